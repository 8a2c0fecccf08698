"""Structure checks of docker-compose.yaml and docker/*.Dockerfile (no Docker needed).

The production-like stack cannot be started on the development machine (no
Docker engine), so these tests pin down what can be checked statically: the
services, pinned images, shared Airflow configuration, healthchecks, mounts,
versions that must agree with requirements.txt, and that no secret is written
into the files. `docker compose config -q` runs too where a Docker engine answers.
"""

from __future__ import annotations

import functools
import json
import os
import re
import secrets
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tools import spark_cluster

REPO = Path(__file__).resolve().parent.parent
COMPOSE_FILE = REPO / "docker-compose.yaml"

AIRFLOW_SERVICES = (
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
)
REQUIRED_SERVICES = (
    "postgres",
    *AIRFLOW_SERVICES,
    "spark-master",
    "spark-worker",
    "azurite",
    "mlflow",
    "marquez",
    "marquez-web",
)
ONE_SHOT_SERVICES = {"airflow-init"}
BIND_MOUNTED_REPO_DIRS = ("./dags", "./plugins", "./include", "./spark_jobs")

# Environment variables the Makefile sets for local runs that the Airflow
# containers must set too, under the same names.
SHARED_ENV_NAMES = (
    "FHIR_LANDING_URI",
    "FHIR_LAKEHOUSE_URI",
    "FHIR_PHI_HASH_KEY",
    "FHIR_SPARK_JARS_DIR",
    "MLFLOW_TRACKING_URI",
    "OPENLINEAGE__TRANSPORT",
    "OPENLINEAGE_NAMESPACE",
    "AIRFLOW__CORE__DAGS_FOLDER",
    "AIRFLOW__CORE__PLUGINS_FOLDER",
    "AIRFLOW__CORE__LOAD_EXAMPLES",
    "AIRFLOW__CORE__EXECUTOR",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
    "AIRFLOW_CONN_SPARK_DEFAULT",
)
# Azurite's documented development account key: public, allowed in the file.
AZURITE_WELL_KNOWN_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
# An exact release in a tag: "3.3.2-python3.11", "16.10-bookworm", "17.0.16_8-jre-jammy".
EXACT_VERSION_TAG = re.compile(r"^v?\d+\.\d+")


# --- helpers -------------------------------------------------------------------


@functools.cache
def compose_text() -> str:
    return COMPOSE_FILE.read_text()


@functools.cache
def compose() -> dict:
    return yaml.safe_load(compose_text())


def services() -> dict[str, dict]:
    return compose()["services"]


def environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # the KEY=VALUE list form
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def requirement_pins(path: Path) -> dict[str, str]:
    """name (lower case, extras dropped) -> version, from `name[extras]==version` lines."""
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        match = re.match(r"^([A-Za-z0-9_.-]+)(\[[^\]]*\])?==([^\s;]+)", line)
        if match:
            pins[match.group(1).lower().replace("_", "-")] = match.group(3)
    return pins


def image_is_pinned(ref: str) -> bool:
    """True for name:exact-version-tag or name@sha256:digest; never latest or untagged."""
    if re.search(r"@sha256:[0-9a-f]{64}$", ref):
        return True
    last = ref.rsplit("/", 1)[-1]
    if ":" not in last:
        return False
    tag = last.split(":", 1)[1]
    return tag != "latest" and bool(EXACT_VERSION_TAG.match(tag))


def image_tag(ref: str) -> str:
    return ref.split("@", 1)[0].rsplit("/", 1)[-1].split(":", 1)[1]


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, line continuations joined, comments dropped."""
    instructions, current = [], ""
    for raw in path.read_text().splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if current and stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        current += stripped
        keyword, _, args = current.partition(" ")
        instructions.append((keyword.upper(), args.strip()))
        current = ""
    return instructions


def dockerfile_images(path: Path) -> list[str]:
    """Every external image a Dockerfile uses: FROM lines and COPY --from=<image>."""
    instructions = dockerfile_instructions(path)
    global_args = {}
    for keyword, args in instructions:
        if keyword == "FROM":
            break
        if keyword == "ARG" and "=" in args:
            name, value = args.split("=", 1)
            global_args[name.strip()] = value.strip().strip('"')

    def expand(text: str) -> str:
        return re.sub(r"\$\{?(\w+)\}?", lambda m: global_args.get(m.group(1), m.group(0)), text)

    stages, images = set(), []
    for keyword, args in instructions:
        if keyword == "FROM":
            words = [w for w in args.split() if not w.startswith("--")]
            ref = expand(words[0])
            if ref not in stages:
                images.append(ref)
            if len(words) >= 3 and words[1].upper() == "AS":
                stages.add(words[2])
        elif keyword in ("COPY", "ADD"):
            match = re.search(r"--from=(\S+)", args)
            if match and match.group(1) not in stages and not match.group(1).isdigit():
                images.append(expand(match.group(1)))
    return images


def dockerfile_arg(path: Path, name: str) -> str:
    for keyword, args in dockerfile_instructions(path):
        if keyword == "ARG" and args.split("=", 1)[0].strip() == name and "=" in args:
            return args.split("=", 1)[1].strip().strip('"')
    raise AssertionError(f"{path.name} has no `ARG {name}=<default>`")


def built_dockerfiles() -> dict[str, Path]:
    """service name -> Dockerfile, for every service with a build section."""
    found = {}
    for name, service in services().items():
        build = service.get("build")
        if build is None:
            continue
        if isinstance(build, str):
            build = {"context": build}
        context = REPO / build.get("context", ".")
        found[name] = context / build.get("dockerfile", "Dockerfile")
    return found


def service_blocks(text: str) -> dict[str, str]:
    """Raw YAML text of each entry under the top-level `services:` key."""
    blocks: dict[str, list[str]] = {}
    current = None
    in_services = False
    for line in text.splitlines():
        if re.match(r"^\S", line):  # a top-level key (or a comment in column 0)
            if line.startswith("#"):
                continue
            in_services = line.rstrip() == "services:"
            current = None
            continue
        if not in_services:
            continue
        match = re.match(r"^  ([A-Za-z0-9_.-]+):\s*$", line)
        if match:
            current = match.group(1)
            blocks[current] = []
        elif current is not None:
            blocks[current].append(line)
    return {name: "\n".join(lines) for name, lines in blocks.items()}


# --- services and images --------------------------------------------------------


def test_required_services_exist():
    missing = [name for name in REQUIRED_SERVICES if name not in services()]
    assert not missing, f"docker-compose.yaml lacks services: {missing}"


def test_every_service_has_an_image_or_a_build():
    for name, service in services().items():
        assert "image" in service or "build" in service, f"{name}: neither image nor build"


def test_every_image_is_pinned_to_an_exact_version():
    for name, service in services().items():
        if "image" in service:
            assert image_is_pinned(service["image"]), (
                f"{name}: image {service['image']!r} is not pinned to an exact version or digest"
            )


def test_every_dockerfile_exists_and_its_base_images_are_pinned():
    dockerfiles = built_dockerfiles()
    assert dockerfiles, "expected built images (Airflow, Spark, MLflow)"
    for name, dockerfile in dockerfiles.items():
        assert dockerfile.is_file(), f"{name}: Dockerfile {dockerfile} does not exist"
        images = dockerfile_images(dockerfile)
        assert images, f"{dockerfile.name}: no FROM line"
        for ref in images:
            assert image_is_pinned(ref), f"{dockerfile.name}: base image {ref!r} is not pinned"


def test_build_contexts_send_only_what_the_dockerfiles_copy():
    """A Dockerfile-specific ignore file keeps .venv/, node_modules/ and .local/
    (which holds the PHI key) out of the build context, and lets through every
    file the Dockerfile copies."""
    for dockerfile in set(built_dockerfiles().values()):
        ignore = dockerfile.with_name(dockerfile.name + ".dockerignore")
        assert ignore.is_file(), f"missing {ignore.relative_to(REPO)}"
        patterns = [
            line.strip()
            for line in ignore.read_text().splitlines()
            if line.strip() and not line.strip().startswith("#")
        ]
        assert patterns[0] == "*", f"{ignore.name}: must start by excluding everything ('*')"
        allowed = {p[1:] for p in patterns if p.startswith("!")}
        for path in allowed:
            assert not path.startswith((".local", ".venv", "node_modules")), (ignore.name, path)
        for keyword, args in dockerfile_instructions(dockerfile):
            if keyword not in ("COPY", "ADD") or "--from=" in args:
                continue
            sources = [w for w in args.split() if not w.startswith("--")][:-1]
            for source in sources:
                assert (REPO / source).exists(), f"{dockerfile.name}: COPY source {source} missing"
                assert source in allowed, f"{ignore.name} does not let {source} through"


def test_built_images_are_tagged_with_the_versions_they_contain():
    pins = requirement_pins(REPO / "requirements.txt")
    expected = {
        "airflow-apiserver": pins["apache-airflow"],
        "spark-master": pins["pyspark"],
        "spark-worker": pins["pyspark"],
        "mlflow": pins["mlflow"],
    }
    for name, version in expected.items():
        assert image_tag(services()[name]["image"]) == version, (name, services()[name]["image"])


# --- versions agree with requirements.txt ----------------------------------------


def test_airflow_image_version_equals_the_requirements_pin():
    airflow_pin = requirement_pins(REPO / "requirements.txt")["apache-airflow"]
    dockerfile = built_dockerfiles()["airflow-apiserver"]
    bases = [ref for ref in dockerfile_images(dockerfile) if ref.startswith("apache/airflow:")]
    assert len(bases) == 1, f"{dockerfile.name}: expected one apache/airflow base, got {bases}"
    tag = image_tag(bases[0])
    assert tag.split("-")[0] == airflow_pin, (tag, airflow_pin)
    # The project's Python (Makefile: python3.11).
    assert tag.endswith("-python3.11"), tag
    text = dockerfile.read_text()
    assert "-r /opt/fhir/build/requirements.txt -c /opt/fhir/build/constraints.txt" in text
    assert "USER airflow" in text


def test_spark_image_version_equals_the_pyspark_pin():
    pins = requirement_pins(REPO / "requirements.txt")
    dockerfile = built_dockerfiles()["spark-master"]
    assert built_dockerfiles()["spark-worker"] == dockerfile
    assert dockerfile_arg(dockerfile, "SPARK_VERSION") == pins["pyspark"]
    assert '"pyspark==${SPARK_VERSION}"' in dockerfile.read_text()
    # Python workers must run the driver's (the Airflow image's) Python minor version.
    assert any(ref.startswith("python:3.11.") for ref in dockerfile_images(dockerfile))


def test_mlflow_image_version_equals_the_mlflow_pin():
    pins = requirement_pins(REPO / "requirements.txt")
    dockerfile = built_dockerfiles()["mlflow"]
    assert dockerfile_arg(dockerfile, "MLFLOW_VERSION") == pins["mlflow"]


def test_python_packages_in_the_spark_image_are_pinned_by_the_lock():
    locked = requirement_pins(REPO / "constraints.txt")
    names = [
        line.split("#", 1)[0].strip()
        for line in (REPO / "docker" / "spark-requirements.txt").read_text().splitlines()
    ]
    names = [n for n in names if n]
    assert names
    unpinned = [n for n in names if n.lower() not in locked]
    assert not unpinned, f"not pinned in constraints.txt: {unpinned}"


def test_delta_jars_come_from_the_project_pom():
    for name in ("airflow-apiserver", "spark-master"):
        text = built_dockerfiles()[name].read_text()
        assert "COPY include/spark/pom.xml" in text
        assert "dependency:copy-dependencies" in text and "-DexcludeTransitive=true" in text


# --- healthchecks and dependencies ----------------------------------------------


def test_every_long_running_service_has_a_healthcheck():
    for name, service in services().items():
        if name in ONE_SHOT_SERVICES:
            continue
        check = service.get("healthcheck") or {}
        assert not check.get("disable"), f"{name}: healthcheck disabled"
        test = check.get("test")
        assert test, f"{name}: no healthcheck test"
        if isinstance(test, list):
            assert test[0] in ("CMD", "CMD-SHELL") and len(test) > 1, (name, test)
        else:
            assert test.strip(), name


def test_healthchecks_probe_what_each_service_serves():
    def probe(name: str) -> str:
        test = services()[name]["healthcheck"]["test"]
        return " ".join(test) if isinstance(test, list) else test

    assert "pg_isready" in probe("postgres")
    assert "http://localhost:8080/api/v2/monitor/health" in probe("airflow-apiserver")
    assert "8974/health" in probe("airflow-scheduler") or "SchedulerJob" in probe("airflow-scheduler")
    assert "--job-type DagProcessorJob" in probe("airflow-dag-processor")
    assert "--job-type TriggererJob" in probe("airflow-triggerer")
    assert "10000" in probe("azurite")
    assert "5000/health" in probe("mlflow")
    assert "8080" in probe("spark-master") and "8081" in probe("spark-worker")
    assert "5001/healthcheck" in probe("marquez") and "3000" in probe("marquez-web")


def test_airflow_services_wait_for_postgres_and_airflow_init():
    for name in AIRFLOW_SERVICES:
        depends = services()[name].get("depends_on") or {}
        assert isinstance(depends, dict), f"{name}: depends_on needs conditions"
        assert depends.get("postgres", {}).get("condition") == "service_healthy", name
        if name not in ONE_SHOT_SERVICES:
            assert depends.get("airflow-init", {}).get("condition") == "service_completed_successfully", name


def test_airflow_init_migrates_the_database():
    init = services()["airflow-init"]
    # Its own entrypoint: the image's /entrypoint runs `airflow db check` first,
    # which fails while the secret files read by the *_CMD settings are missing.
    command = init["entrypoint"]
    command = " ".join(command) if isinstance(command, list) else command
    script_in_image = "/opt/fhir/bin/airflow-init.sh"
    assert script_in_image in command
    assert "COPY docker/airflow-init.sh " + script_in_image in (
        built_dockerfiles()["airflow-init"].read_text()
    )
    script = REPO / "docker" / "airflow-init.sh"
    assert "airflow db migrate" in script.read_text()
    bash = shutil.which("bash")
    if bash:
        result = subprocess.run([bash, "-n", str(script)], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr


# --- one Airflow configuration -----------------------------------------------------


def test_airflow_services_merge_the_common_anchor():
    text = compose_text()
    assert re.search(r"^x-airflow-common: &airflow-common\s*$", text, re.M)
    blocks = service_blocks(text)
    for name in AIRFLOW_SERVICES:
        assert name in blocks, f"{name} not found in the raw YAML"
        assert re.search(r"^    <<: \*airflow-common\s*$", blocks[name], re.M), (
            f"{name} does not merge `<<: *airflow-common`"
        )


def test_airflow_services_share_image_volumes_and_environment():
    common = compose()["x-airflow-common"]
    shared_keys = set(environment(common))
    for key in (
        "AIRFLOW__CORE__EXECUTOR",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
        "AIRFLOW__CORE__DAGS_FOLDER",
        "AIRFLOW__CORE__PLUGINS_FOLDER",
        "FHIR_LANDING_URI",
        "FHIR_LAKEHOUSE_URI",
        "FHIR_PHI_HASH_KEY",
        "FHIR__COMPUTE__BACKEND",
        "MLFLOW_TRACKING_URI",
    ):
        assert key in shared_keys, f"x-airflow-common environment lacks {key}"
    reference = {k: environment(common)[k] for k in shared_keys}
    for name in AIRFLOW_SERVICES:
        service = services()[name]
        env = environment(service)
        assert {k: env.get(k) for k in shared_keys} == reference, f"{name}: environment differs"
        assert service.get("image") == common["image"], name
        assert service.get("build") == common["build"], name
        assert service.get("volumes") == common["volumes"], name


def test_airflow_environment_values():
    env = environment(compose()["x-airflow-common"])
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")
    assert "@postgres:5432/airflow" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"].lower() == "false"
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == "/opt/airflow/dags"
    assert env["AIRFLOW__CORE__PLUGINS_FOLDER"] == "/opt/airflow/plugins"
    assert env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert json.loads(env["OPENLINEAGE__TRANSPORT"]) == {"type": "http", "url": "http://marquez:5000"}
    assert env["FHIR__COMPUTE__BACKEND"] == "spark_submit"
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"].startswith("http://airflow-apiserver:8080")

    spark = json.loads(env["AIRFLOW_CONN_SPARK_DEFAULT"])
    assert spark["conn_type"] == "spark"
    assert (spark["host"], spark["port"]) == ("spark://spark-master", 7077)

    wasb = json.loads(env["AIRFLOW_CONN_WASB_DEFAULT"])
    assert wasb["conn_type"] == "wasb"
    parts = dict(item.split("=", 1) for item in wasb["extra"]["connection_string"].split(";") if item)
    assert parts["AccountName"] == "devstoreaccount1"
    assert parts["AccountKey"] == AZURITE_WELL_KNOWN_KEY
    assert parts["BlobEndpoint"] == "http://azurite:10000/devstoreaccount1"


def test_env_names_match_the_makefile():
    makefile = (REPO / "Makefile").read_text()
    env = environment(compose()["x-airflow-common"])
    for name in SHARED_ENV_NAMES:
        assert re.search(rf"^export {name}\b", makefile, re.M), f"Makefile no longer exports {name}"
        assert name in env, f"the Airflow containers do not set {name}"


def test_spark_cluster_matches_the_airflow_connection():
    master = services()["spark-master"]
    worker = services()["spark-worker"]
    master_cmd = " ".join(master["command"])
    worker_cmd = " ".join(worker["command"])
    assert "org.apache.spark.deploy.master.Master" in master_cmd
    assert "--port 7077" in master_cmd and "--host spark-master" in master_cmd
    assert "7077:7077" in master["ports"] and "8081:8080" in [p.split()[0] for p in master["ports"]]
    assert "org.apache.spark.deploy.worker.Worker" in worker_cmd
    assert "spark://spark-master:7077" in worker_cmd
    assert worker["depends_on"]["spark-master"]["condition"] == "service_healthy"


def test_spark_services_run_the_cluster_definition():
    """The compose cluster is the one `make cluster` and the cluster tests start
    (tools/spark_cluster.py): same classes, ports, cores and memory per worker, number
    of workers and worker settings; only the host names differ."""
    master = services()["spark-master"]
    worker = services()["spark-worker"]
    assert master["command"] == spark_cluster.master_command(
        "spark-master", spark_cluster.MASTER_PORT, spark_cluster.MASTER_WEBUI_PORT
    )
    assert worker["command"] == spark_cluster.worker_command(
        f"spark://spark-master:{spark_cluster.MASTER_PORT}",
        spark_cluster.WORKER_WEBUI_PORT,
        spark_cluster.CONTAINER_WORK_DIR,
    )
    assert worker["deploy"]["replicas"] == spark_cluster.WORKERS
    assert environment(worker)["SPARK_WORKER_OPTS"] == spark_cluster.WORKER_OPTS
    # Host ports: the same on this machine (make cluster) as compose publishes them.
    published = [str(p).split()[0] for p in master["ports"]]
    assert f"{spark_cluster.MASTER_PORT}:{spark_cluster.MASTER_PORT}" in published
    assert f"{spark_cluster.LOCAL_MASTER_WEBUI_PORT}:{spark_cluster.MASTER_WEBUI_PORT}" in published
    first, last = min(spark_cluster.LOCAL_WORKER_WEBUI_PORTS), max(spark_cluster.LOCAL_WORKER_WEBUI_PORTS)
    assert f"{first}-{last}:{spark_cluster.WORKER_WEBUI_PORT}" in [str(p).split()[0] for p in worker["ports"]]


def test_azurite_and_mlflow_services():
    azurite = services()["azurite"]
    assert azurite["image"] == "mcr.microsoft.com/azure-storage/azurite:3.35.0"
    command = " ".join(azurite["command"])
    assert command.startswith("azurite-blob") and "--blobHost 0.0.0.0" in command
    assert "--loose" in command
    assert any(str(p).startswith("10000:") for p in azurite["ports"])

    mlflow = services()["mlflow"]
    command = " ".join(mlflow["command"])
    assert "--serve-artifacts" in command and "--port 5000" in command
    assert any(str(p).startswith("5000:") for p in mlflow["ports"])
    # MLflow rejects requests whose Host header it does not know (DNS rebinding
    # protection): the Airflow containers call it as mlflow:5000.
    assert "mlflow:5000" in command


# --- volumes and mounts ------------------------------------------------------------


def bind_sources(service: dict) -> list[str]:
    sources = []
    for volume in service.get("volumes") or []:
        if isinstance(volume, str):
            source = volume.split(":", 1)[0]
            if source.startswith((".", "/")):
                sources.append(source)
        elif volume.get("type") == "bind":
            sources.append(volume["source"])
    return sources


def volume_targets(service: dict) -> dict[str, str]:
    """container path -> named volume, for named-volume mounts."""
    targets = {}
    for volume in service.get("volumes") or []:
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
            if not source.startswith((".", "/")):
                targets[target] = source
    return targets


def test_repo_directories_are_mounted_read_only_into_airflow():
    for name in AIRFLOW_SERVICES:
        mounts = [v for v in services()[name]["volumes"] if isinstance(v, str)]
        for folder in BIND_MOUNTED_REPO_DIRS:
            target = "/opt/airflow/" + folder[2:]
            assert f"{folder}:{target}:ro" in mounts, f"{name}: {folder} not mounted at {target}:ro"


def test_mounted_host_paths_exist():
    for name, service in services().items():
        for source in bind_sources(service):
            path = (REPO / source).resolve()
            assert path.exists(), f"{name}: mounted host path {source} does not exist"
            assert REPO in path.parents or path == REPO, f"{name}: {source} is outside the repo"


def test_lakehouse_and_landing_are_shared_at_the_same_path():
    env = environment(compose()["x-airflow-common"])
    for variable in ("FHIR_LAKEHOUSE_URI", "FHIR_LANDING_URI"):
        path = env[variable]
        volumes = set()
        for name in (*AIRFLOW_SERVICES, "spark-master", "spark-worker"):
            targets = volume_targets(services()[name])
            assert path in targets, f"{name}: {variable} path {path} is not a mounted volume"
            volumes.add(targets[path])
        assert len(volumes) == 1, f"{variable}: different volumes {volumes}"
        assert volumes.pop() in compose()["volumes"]
        spark_env = environment(services()["spark-worker"])
        assert spark_env.get(variable) == path


def test_named_volumes_are_declared():
    declared = set(compose().get("volumes") or {})
    for name, service in services().items():
        for volume in volume_targets(service).values():
            assert volume in declared, f"{name}: volume {volume} is not declared"


# --- secrets --------------------------------------------------------------------------


def test_phi_hash_key_comes_from_the_host_environment():
    required = re.compile(r"^\$\{FHIR_PHI_HASH_KEY:\?[^}]+\}$")
    seen = 0
    for name, service in {**services(), "x-airflow-common": compose()["x-airflow-common"]}.items():
        value = environment(service).get("FHIR_PHI_HASH_KEY")
        if value is not None:
            seen += 1
            assert required.match(value), f"{name}: FHIR_PHI_HASH_KEY must be ${{FHIR_PHI_HASH_KEY:?...}}"
    assert seen, "FHIR_PHI_HASH_KEY is not passed to any service"


def test_no_secret_literal_in_the_files():
    files = [COMPOSE_FILE, *sorted((REPO / "docker").rglob("*"))]
    high_entropy = re.compile(r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{40,}={0,2}")
    hex_secret = re.compile(r"\b[0-9a-fA-F]{32,}\b")
    for path in files:
        if not path.is_file():
            continue
        text = path.read_text().replace(AZURITE_WELL_KNOWN_KEY, "<azurite-well-known-key>")
        for pattern in (high_entropy, hex_secret):
            found = [m for m in pattern.findall(text) if not m.startswith("sha256")]
            assert not found, f"{path.relative_to(REPO)}: secret-looking literal {found}"
        for key in re.findall(r"AccountKey=([^;\"']+)", path.read_text()):
            assert key == AZURITE_WELL_KNOWN_KEY, f"{path.name}: AccountKey other than Azurite's"


def test_passwords_in_the_compose_file_are_interpolated():
    """Database passwords are `${VAR:-dev-default}`; Airflow's own secrets are
    generated at first start and read with the *_CMD form."""
    dsn_password = re.compile(r"://[^:/@\s]+:([^@\s]+)@")
    for name, service in {**services(), "x-airflow-common": compose()["x-airflow-common"]}.items():
        env = environment(service)
        command = service.get("command") or []
        values = list(env.values()) + ([command] if isinstance(command, str) else command)
        for value in values:
            for password in dsn_password.findall(value):
                assert password.startswith("${"), f"{name}: literal password in {value!r}"
        for key, value in env.items():
            if key.endswith("_CMD") or key.startswith("AIRFLOW_CONN_"):
                continue
            if re.search(r"PASSWORD|SECRET|TOKEN|_KEY$", key) and not key.endswith("_FILE"):
                assert value.startswith("${"), f"{name}: {key} is a literal, not interpolated"


# --- Docker Compose's own validation, where Docker runs ---------------------------------


def _docker_engine_answers() -> bool:
    docker = shutil.which("docker")
    if not docker:
        return False
    try:
        info = subprocess.run([docker, "info"], capture_output=True, timeout=30)
        plugin = subprocess.run([docker, "compose", "version"], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return info.returncode == 0 and plugin.returncode == 0


def test_docker_compose_config_is_valid():
    if not _docker_engine_answers():
        pytest.skip("no Docker engine with the compose plugin answers here (`docker info` fails)")
    env = {**os.environ, "FHIR_PHI_HASH_KEY": secrets.token_hex(32)}
    result = subprocess.run(
        ["docker", "compose", "-f", str(COMPOSE_FILE), "config", "-q"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
