"""What the Spark jobs and the Airflow side agree on, with no dependencies, so the
Airflow side reads it without importing pyspark.

How a job ends, on either backend:
- success: exit status 0;
- skipped (nothing to do: no new data, nothing to train on): spark-submit sees
  EXIT_SKIPPED; on Databricks the run fails with an error that starts with
  SKIPPED_ERROR_PREFIX (a Python task has no other way to say it). The task is
  marked skipped and pages nobody;
- permanent failure (bad input or configuration): EXIT_PERMANENT, or an error
  starting with PERMANENT_ERROR_PREFIX on Databricks. The task fails at once;
- anything else fails the task, which retries per policy and then pages.

How a driver JVM we launch ourselves starts (spark-submit from a task, a local
session, the job server): its JVM options, the class archive and the jars.
"""

from __future__ import annotations

import glob
import os
import shlex
from pathlib import Path

EXIT_PERMANENT = 2
# Airflow's own convention for "skip" (BashOperator's skip_on_exit_code).
EXIT_SKIPPED = 99
SKIPPED_ERROR_PREFIX = "JobSkipped:"
PERMANENT_ERROR_PREFIX = "PermanentJobError:"
# The job server (spark_jobs/job_server.py) ends each job's streamed log with this line
# and the job's exit status.
SERVER_EXIT_STATUS_PREFIX = "exit status: "
# OpenLineage (spark_jobs/lineage.py): a job's parent run and its DAG run's root, each
# "<namespace>/<job name>/<run id>", reach it in these variables (the job server: in its
# request); LINEAGE_SETTINGS_ENV configure openlineage-python, as they do Airflow's provider.
LINEAGE_PARENT_ENV = "OPENLINEAGE_PARENT_ID"
LINEAGE_ROOT_PARENT_ENV = "OPENLINEAGE_ROOT_PARENT_ID"
LINEAGE_TRANSPORT_ENV = ("OPENLINEAGE__TRANSPORT", "OPENLINEAGE_URL", "OPENLINEAGE_CONFIG")
LINEAGE_SETTINGS_ENV = (*LINEAGE_TRANSPORT_ENV, "OPENLINEAGE_NAMESPACE", "OPENLINEAGE_DISABLED")

# Every table lives at <lakehouse>/<layer>/<table> (SPEC §4).
LAYERS = ("bronze", "silver", "gold")


def layer_path(lakehouse: str, layer: str) -> str:
    if layer not in LAYERS:
        raise ValueError(f"unknown lakehouse layer {layer!r}; expected one of {LAYERS}")
    return f"{lakehouse.rstrip('/')}/{layer}"


def table_path(lakehouse: str, layer: str, table: str) -> str:
    return f"{layer_path(lakehouse, layer)}/{table}"


# The jobs (`python -m spark_jobs.<job>`, `spark-submit spark_jobs/<job>.py`) and the
# arguments each one's command line takes (--run-date for run_date): tasks build command
# lines only from these names, and a test holds each job's argument parser to them.
JOB_ARGUMENTS: dict[str, frozenset[str]] = {
    "bronze_ingest": frozenset({"landing", "lakehouse", "run_date", "run_id", "landing_prefix", "force"}),
    "silver_normalize": frozenset({"lakehouse", "run_date", "lookback_days", "views_folder"}),
    "gold_aggregate": frozenset({"lakehouse", "as_of", "trend_days"}),
    "quality_gate": frozenset({"lakehouse", "run_date", "thresholds"}),
    "train_models": frozenset(
        {
            "lakehouse",
            "tracking_uri",
            "as_of",
            "horizon_days",
            "artifact_root",
            "seed",
            "min_rows",
            "models",
            "force",
            "page_after_retrain_skips",
            "summary_out",
        }
    ),
    "score_risk": frozenset(
        {"lakehouse", "tracking_uri", "as_of", "drift_threshold", "drift_min_rows", "summary_out"}
    ),
    "azure_ml_deploy": frozenset(
        {
            "tracking_uri",
            "model",
            "subscription_id",
            "resource_group",
            "workspace",
            "instance_type",
            "instance_count",
        }
    ),
    "maintenance": frozenset({"lakehouse", "retention_hours"}),
    "stream_ingest": frozenset(
        {
            "source",
            "landing",
            "lakehouse",
            "checkpoint",
            "status_file",
            "query_name",
            "trigger_seconds",
            "max_files_per_trigger",
            "max_records_per_trigger",
            "kafka_bootstrap",
            "kafka_topic",
            "kafka_starting_offsets",
            "kafka_sasl",
        }
    ),
}
# The stream runs apart, supervised; every other job runs to its end in a task.
BATCH_JOBS = frozenset(JOB_ARGUMENTS) - {"stream_ingest"}


def job_command_line(job: str, **arguments: object) -> list[str]:
    """A job's command-line arguments: `--name value` for each (a list: its values after
    the one flag; True: the flag alone; None or False: left out)."""
    if job not in JOB_ARGUMENTS:
        raise ValueError(f"unknown Spark job {job!r}; the jobs are {sorted(JOB_ARGUMENTS)}")
    unknown = set(arguments) - JOB_ARGUMENTS[job]
    if unknown:
        raise ValueError(f"{job} takes no {sorted(unknown)}; its arguments are {sorted(JOB_ARGUMENTS[job])}")
    line: list[str] = []
    for name, value in arguments.items():
        if value is None or value is False:
            continue
        line.append("--" + name.replace("_", "-"))
        if isinstance(value, list | tuple):
            line.extend(str(v) for v in value)
        elif value is not True:
            line.append(str(value))
    return line


REPO_ROOT = Path(__file__).resolve().parent
DEFAULT_JARS_DIR = REPO_ROOT / ".local" / "jars"
# The JVM class-data-sharing archive `make setup` records (tools/spark_class_archive.py).
CLASS_ARCHIVE = REPO_ROOT / ".local" / "spark-classes.jsa"
# JVM options for short batch jobs on two cores:
# - the throughput collector: G1's concurrent work takes CPU from the two task
#   threads;
# - less inlining: a job lives about a minute, and the C2 compiler thread takes a
#   large share of a job's CPU time, most of it on Spark's generated classes. Smaller
#   compilation units (defaults 325 and 2500 bytes) cost less to compile than they
#   lose at run time;
# - JIT-compile huge methods: whole-stage code generation writes methods over the
#   JVM's 8000-byte limit (silver's Observation normalize gets such methods), which
#   the JVM otherwise interprets for the life of the job;
# - C2 gives up early on Spark's generated whole-stage methods (a node budget of
#   20,000, a quarter of its default), which then run as C1 code: C2 spent many CPU
#   seconds of silver's Observation step on a few of them, while the two task threads
#   ran them slower, profiled, waiting for it. C1 code is not slower for these methods,
#   even at scale. `quiet` keeps the JVM from echoing the command on stdout.
GENERATED_CODE_NODE_LIMIT = 20_000
JVM_OPTIONS = (
    "-XX:+UseParallelGC -XX:FreqInlineSize=100 -XX:InlineSmallCode=1000 -XX:-DontCompileHugeMethods "
    "-XX:CompileCommand=quiet "
    f"-XX:CompileCommand=MaxNodeLimit,*GeneratedIteratorForCodegenStage*.*,{GENERATED_CODE_NODE_LIMIT}"
)
DRIVER_JAVA_OPTIONS = f"-Dlog4j2.level=WARN {JVM_OPTIONS}"
# With a local master the driver does all the work, and Spark's 1 GiB default is less
# than the jobs are tested and benchmarked with. Only the launcher can set it.
DRIVER_MEMORY = "2g"


def delta_jars(jars_dir: Path | None = None) -> list[str]:
    """Jar files fetched by `make setup` (see include/spark/pom.xml)."""
    folder = Path(os.environ.get("FHIR_SPARK_JARS_DIR", jars_dir or DEFAULT_JARS_DIR))
    return sorted(glob.glob(str(folder / "*.jar")))


def class_archive_option(archive: Path = CLASS_ARCHIVE) -> str | None:
    """The JVM option that maps the class archive, when setup recorded one: the driver
    then maps Spark's classes instead of loading them, so each process has its session
    up and its first Delta reads planned sooner."""
    return f"-XX:SharedArchiveFile={shlex.quote(str(archive))}" if archive.is_file() else None


# The name include/ (code sets, views, configuration) is shipped under to spark-submit
# jobs (`--archives <zip>#include`), where they run from a zip with no repository.
INCLUDE_ARCHIVE = "include"


# A job that has news for on-call (a model gone stale, drift) writes it as one JSON file,
# {"pages": [{"subject": ..., "message": ...}]}, and the DAG's next task pages each
# through the notifier factory: jobs import no Airflow.
JOB_SUMMARIES_FOLDER = "_job_summaries"


def job_summary_path(lakehouse: str, job: str, run_id: str) -> str:
    """Where a job of one DAG run writes its summary. Hadoop paths take no ':' and a
    run id has them, so they (and '+') become '-'."""
    run_key = run_id.replace(":", "-").replace("+", "-")
    return f"{lakehouse.rstrip('/')}/{JOB_SUMMARIES_FOLDER}/{job}/{run_key}.json"
