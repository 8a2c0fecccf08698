"""The Python environment Spark executors run the jobs' Python code in, packed for
`spark-submit --archives <tar.gz>#environment` with
`spark.pyspark.python=./environment/bin/python` (executors only; the driver keeps its
own interpreter).

    python -m tools.executor_env        prints the archive's path, building it if needed

Self-contained, so a worker needs nothing but the archive: this interpreter (binary,
libpython, standard library less tests, Tk and IDLE) and the packages of
requirements-executor.txt at their constraints.txt versions. A packed venv would not
do: its bin/python is a link to the build machine's interpreter. bin/python is a
wrapper that loads the shipped libpython and ignores the user's site-packages.
Cached under .local/executor-env/, keyed by what goes into it.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
REQUIREMENTS = REPO / "requirements-executor.txt"
CONSTRAINTS = REPO / "constraints.txt"
DEFAULT_ROOT = REPO / ".local" / "executor-env"
# Standard library folders no job imports.
STDLIB_SKIPPED = {"site-packages", "test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3"}
# Inside packages: test suites, C headers, Cython sources, and Arrow Flight
# (a fifth of pyarrow; PySpark's Arrow transfers do not use it).
PACKAGE_SKIPPED = (
    "tests", "include", "*.pyx", "*.pxd", "*.pxi",
    "*arrow_flight*", "*arrow_python_flight*", "_flight*",
)  # fmt: skip
WRAPPER = """#!/bin/sh
# The shipped interpreter with the shipped libpython; nothing from the user's site-packages.
here=$(dirname "$0")
LD_LIBRARY_PATH="$here/../lib${{LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}}" PYTHONNOUSERSITE=1 \\
    exec "$here/{python}" "$@"
"""


def requirement_names(path: Path = REQUIREMENTS) -> list[str]:
    lines = (line.split("#")[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


def pins(names: list[str], constraints: Path = CONSTRAINTS) -> list[str]:
    """`name==version` of each name, from the lock."""
    locked = {}
    for line in constraints.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+)==(\S+)", line)
        if match:
            locked[_normalized(match[1])] = line.strip()
    missing = [name for name in names if _normalized(name) not in locked]
    if missing:
        raise RuntimeError(f"{REQUIREMENTS.name}: {missing} not in {constraints.name}; run `make lock`")
    return [locked[_normalized(name)] for name in names]


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def archive_path(root: Path = DEFAULT_ROOT) -> Path:
    """Where the archive for the current inputs lives: they name it."""
    digest = hashlib.sha256()
    for part in (sys.version, *pins(requirement_names()), Path(__file__).read_text()):
        digest.update(part.encode() + b"\0")
    return root / f"executor-env-{digest.hexdigest()[:16]}.tar.gz"


def build(root: Path = DEFAULT_ROOT) -> Path:
    """The archive for the current inputs, built now if it is not there yet."""
    archive = archive_path(root)
    if archive.exists():
        return archive
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root) as staging:
        env = Path(staging) / "environment"
        _copy_interpreter(env)
        site = env / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
        uv = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
        subprocess.run(
            [uv, "pip", "install", "--quiet", "--no-deps", "--python", sys.executable, "--target", str(site)]
            + pins(requirement_names()),
            check=True,
        )
        for pattern in PACKAGE_SKIPPED:
            for path in list(site.glob(f"*/**/{pattern}")):
                shutil.rmtree(path) if path.is_dir() else path.unlink()
        check(env)
        partial = archive.with_suffix(f".{os.getpid()}.tmp")
        subprocess.run(["tar", "-C", str(env), "-I", "gzip -1", "-cf", str(partial), "."], check=True)
        partial.replace(archive)
    for stale in root.glob("executor-env-*.tar.gz"):
        if stale != archive:
            stale.unlink()
    return archive


def _copy_interpreter(env: Path) -> None:
    prefix = Path(sys.base_prefix)
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    (env / "bin").mkdir(parents=True)
    shutil.copy2(Path(sys.executable).resolve(), env / "bin" / version)
    (env / "lib").mkdir()
    library = sysconfig.get_config_var("INSTSONAME")  # libpython3.11.so.1.0 when shared
    if sysconfig.get_config_var("Py_ENABLE_SHARED") and library:
        shutil.copy2(Path(sysconfig.get_config_var("LIBDIR")) / library, env / "lib" / library)
    shutil.copytree(
        prefix / "lib" / version,
        env / "lib" / version,
        ignore=lambda folder, names: [
            n for n in names if n in STDLIB_SKIPPED or n.startswith("config-") or n.endswith(".a")
        ],
    )
    (env / "lib" / version / "site-packages").mkdir()
    wrapper = env / "bin" / "python"
    wrapper.write_text(WRAPPER.format(python=version))
    wrapper.chmod(0o755)


def check(env: Path) -> None:
    """The environment runs on its own: a clean environment, its own prefix and packages."""
    probe = (
        "import sys, numpy, pandas, pyarrow, dateutil, pytz; "
        "paths = [p for p in sys.path if p]; "
        f"assert all(p.startswith({str(env)!r}) for p in paths), paths; "
        "print(sys.prefix)"
    )
    result = subprocess.run(
        [str(env / "bin" / "python"), "-c", probe],
        env={"PATH": "/usr/bin:/bin"},
        cwd=env,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise RuntimeError(f"the executor environment does not run on its own:\n{result.stderr[-2000:]}")


if __name__ == "__main__":
    print(build())
