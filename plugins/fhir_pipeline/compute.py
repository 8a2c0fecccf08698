"""The one task factory for Spark jobs: `spark_job(task_id, job, args)` builds a
spark-submit task, a run in the local job server or a Databricks run of
`spark_jobs/<job>.py`, chosen by settings (compute.backend), so DAG files never
name a backend.

spark_submit: SparkSubmitOperator over the `spark_default` connection (local[2],
spark://..., yarn, k8s://...), shipping spark_jobs/ as a zip (--py-files), include/
and compute.archives (--archives) and the jars from FHIR_SPARK_JARS_DIR (--jars).
The driver starts in an empty folder with the repository off PYTHONPATH, so a job
leaning on files beside the code fails in every run, not first on a cluster.
Secrets (the PHI key, storage account keys) reach the job through its environment,
never its command line.
job_server: a POST to the long-lived local driver of spark_jobs/job_server.py
(compute.job_server_url), which runs the job in its warm JVM and streams its log
back; the server's own environment holds the secrets (local and small runs).
databricks: DatabricksSubmitRunOperator (deferrable) with the job cluster from
include/databricks/job_cluster.json and a spark_python_task with the same
arguments; secrets come from the cluster's secret-scope environment.

Every backend hands the job its task's OpenLineage run as the parent of the job's own
(`lineage_parents`, spark_jobs/lineage.py): in its environment, or the job server's request.

Both backends read a job's end the same way (fhir_contract.py): a job
that had nothing to do (JobSkipped) marks the task skipped, which pages nobody; a
permanent failure (bad input or configuration) fails it at once, since retrying
cannot fix it; any other failure retries per policy and then pages.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import tempfile
import zipfile
from datetime import timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk.exceptions import AirflowSkipException

from fhir_contract import (
    DRIVER_MEMORY,
    EXIT_PERMANENT,
    EXIT_SKIPPED,
    INCLUDE_ARCHIVE,
    JVM_OPTIONS,
    LINEAGE_PARENT_ENV,
    LINEAGE_ROOT_PARENT_ENV,
    LINEAGE_SETTINGS_ENV,
    class_archive_option,
    delta_jars,
    job_command_line,
)
from fhir_pipeline.config import REPO_ROOT, settings
from fhir_pipeline.provider_internals import spark_submit_command, spark_submit_exit_status

SPARK_JOBS = REPO_ROOT / "spark_jobs"
CONTRACT = REPO_ROOT / "fhir_contract.py"
INCLUDE = REPO_ROOT / "include"
# Environment the Spark job reads (see spark_jobs.phi and spark_jobs.session).
SECRET_ENV = ("FHIR_PHI_HASH_KEY", "FHIR_AZURE_STORAGE_KEY")
PASSED_ENV = (
    "FHIR_AZURE_STORAGE_ACCOUNT",
    "FHIR_AZURE_STORAGE_ENDPOINT",
    "MLFLOW_TRACKING_URI",
    "FHIR_SPARK_JARS_DIR",
    *LINEAGE_SETTINGS_ENV,
)
# What a spark-submit driver must not inherit from the Airflow worker: the jobs come
# from the shipped zip and include/ from the shipped archive, not the repository.
OFF_REPOSITORY_ENV = {"PYTHONPATH": "", "FHIR_INCLUDE_DIR": ""}


class PermanentJobFailure(Exception):
    """The Spark job reported a failure that a retry cannot fix (bad input or configuration)."""


def permanent_failure(job: str) -> PermanentJobFailure:
    return PermanentJobFailure(
        f"spark_jobs.{job} failed permanently (bad input or configuration); "
        "see the job log above for the reason. Not retrying."
    )


def exit_outcome(job: str, status: int | None) -> Exception | None:
    """What a job's exit status means for its task: a skip, a permanent failure, or
    (None) an ordinary failure that retries per policy."""
    if status == EXIT_SKIPPED:
        return AirflowSkipException(f"spark_jobs.{job} had nothing to do: see its 'JobSkipped:' line above")
    if status == EXIT_PERMANENT:
        return permanent_failure(job)
    return None


def lineage_parents(context) -> dict[str, str]:
    """The task's OpenLineage run and its DAG run's, as the parent and root of the job it
    starts (spark_jobs.lineage); {} while the OpenLineage provider is disabled."""
    from airflow.providers.openlineage.conf import is_disabled

    if is_disabled():
        return {}
    from airflow.providers.openlineage.plugins.macros import lineage_parent_id, lineage_root_parent_id

    return {"parent": lineage_parent_id(context["ti"]), "root": lineage_root_parent_id(context["ti"])}


def lineage_env(context) -> dict[str, str]:
    """lineage_parents as the environment variables the job reads them from."""
    parents = lineage_parents(context)
    if not parents:
        return {}
    return {LINEAGE_PARENT_ENV: parents["parent"], LINEAGE_ROOT_PARENT_ENV: parents["root"]}


def spark_submit_conf() -> dict[str, str]:
    """compute.spark_conf over the driver memory the jobs are tested with, plus, when the
    config sets no driver JVM options, the JVM options the jobs are tuned for and the
    driver's class archive if `make setup` recorded one (a driver that cannot find or
    use the archive starts normally)."""
    conf = {"spark.driver.memory": DRIVER_MEMORY, **settings().compute.spark_conf}
    if "spark.driver.extraJavaOptions" not in conf:
        conf["spark.driver.extraJavaOptions"] = " ".join(filter(None, [JVM_OPTIONS, class_archive_option()]))
    return conf


def package_spark_jobs() -> str:
    """spark_jobs/ (with its subpackages) and the job contract as a zip for --py-files,
    rebuilt only when their sources change."""
    return _zip("fhir_spark_jobs", REPO_ROOT, sorted([*SPARK_JOBS.rglob("*.py"), CONTRACT]))


def package_include() -> str:
    """include/ (code sets, views, configuration) as a zip for `--archives <zip>#include`,
    which the jobs find on the driver and the executors (spark_jobs.codesets.include_path)."""
    return _zip("fhir_include", INCLUDE, sorted(p for p in INCLUDE.rglob("*") if p.is_file()))


def _zip(name: str, base: Path, sources: list[Path]) -> str:
    """A zip of these files (named relative to `base`), rebuilt only when they change."""
    digest = hashlib.sha256(
        b"".join(p.relative_to(base).as_posix().encode() + p.read_bytes() for p in sources)
    ).hexdigest()[:16]
    target = Path(tempfile.gettempdir()) / f"{name}-{digest}.zip"
    if not target.exists():
        partial = target.with_suffix(f".{os.getpid()}.tmp")
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sources:
                archive.write(path, path.relative_to(base).as_posix())
        partial.replace(target)
    return str(target)


def _secret(name: str) -> str | None:
    """A secret from the worker environment, else the Airflow Variable of the same name
    in lower case (backed by Azure Key Vault through the secrets backend in production)."""
    value = os.environ.get(name)
    if value:
        return value
    from airflow.sdk import Variable

    return Variable.get(name.lower(), default=None)


def job_environment(include_shipped: bool = False) -> dict[str, str]:
    """The job's environment: storage settings, secrets and, unless include/ ships with
    the job (package_include), where the repository's include/ is."""
    from airflow.sdk.log import mask_secret

    env = {name: os.environ[name] for name in PASSED_ENV if os.environ.get(name)}
    for name in SECRET_ENV:
        value = _secret(name)
        if value:
            mask_secret(value)
            env[name] = value
    if not include_shipped:
        env["FHIR_INCLUDE_DIR"] = str(INCLUDE)
    # Local executors must run the interpreter that has the project's packages.
    env.setdefault("PYSPARK_PYTHON", sys.executable)
    return env


def spark_jars() -> str | None:
    """The jars `make setup` fetched, for --jars."""
    return ",".join(delta_jars()) or None


class SparkJobOperator(SparkSubmitOperator):
    """spark-submit of spark_jobs/<job>.py with the project's packaging and secrets."""

    def __init__(self, *, job: str, job_args: list[str], **kwargs: Any) -> None:
        compute = settings().compute
        super().__init__(
            application=str(SPARK_JOBS / f"{job}.py"),
            application_args=job_args,
            conn_id=compute.spark_conn_id,
            conf=dict(compute.spark_conf),
            jars=spark_jars(),
            name=f"fhir-{job}",
            **kwargs,
        )
        self.job = job

    def prepare(self) -> None:
        """What spark-submit gets, set at run time: the conf, spark_jobs/ as --py-files,
        include/ and compute.archives as --archives, the secrets in its environment."""
        self.conf = spark_submit_conf()
        self.py_files = package_spark_jobs()
        include = f"{package_include()}#{INCLUDE_ARCHIVE}"
        self._archives = ",".join([include, *settings().compute.archives])
        self.env_vars = {**job_environment(include_shipped=True), **OFF_REPOSITORY_ENV}
        # The hook reads these at construction, after templating.
        self._hook = None

    def submit_command(self) -> list[str]:
        """The spark-submit command line execute runs (after prepare)."""
        return spark_submit_command(self._get_hook(), self.application)

    def execute(self, context):
        self.prepare()
        self.env_vars |= lineage_env(context)
        try:
            with tempfile.TemporaryDirectory(prefix="fhir-driver-") as empty, contextlib.chdir(empty):
                return super().execute(context)
        except Exception as exc:
            outcome = exit_outcome(self.job, spark_submit_exit_status(self._hook))
            if outcome is None:
                raise
            raise outcome from exc


def databricks_run_json(job: str, job_args: list[str]) -> dict[str, Any]:
    """The Jobs API runs/submit payload for one job (tested as the exact JSON sent)."""
    compute = settings().compute
    cluster = json.loads((REPO_ROOT / compute.databricks_cluster_spec).read_text())
    return {
        "run_name": f"fhir-{job}",
        "tasks": [
            {
                "task_key": job,
                "new_cluster": cluster,
                "spark_python_task": {
                    "python_file": f"{compute.databricks_jobs_root.rstrip('/')}/{job}.py",
                    "parameters": job_args,
                },
                # What the runtime lacks: the jobs' lineage client (spark_jobs.lineage).
                "libraries": [{"pypi": {"package": f"openlineage-python=={version('openlineage-python')}"}}],
                "timeout_seconds": 0,
            }
        ],
    }


def spark_job(job: str, *, task_id: str | None = None, trigger_rule: str | None = None, **arguments: Any):
    """A task (named `task_id`, default the job's name) running `spark_jobs/<job>.py` on
    the configured compute backend with `arguments` as its command line (see
    fhir_contract.job_command_line; values may be Jinja templates), within the job's
    timeout (`timeouts.<job>`)."""
    compute = settings().compute
    job_args = job_command_line(job, **arguments)
    kwargs: dict[str, Any] = {
        "task_id": task_id or job,
        "execution_timeout": timedelta(minutes=settings().timeout_minutes(job)),
    }
    if trigger_rule:
        kwargs["trigger_rule"] = trigger_rule
    if compute.backend == "databricks":
        from fhir_pipeline.databricks_job import DatabricksJobOperator  # provider import: not at parse time

        return DatabricksJobOperator(
            job=job,
            json=databricks_run_json(job, job_args),
            databricks_conn_id=compute.databricks_conn_id,
            polling_period_seconds=compute.databricks_polling_seconds,
            deferrable=True,
            **kwargs,
        )
    if compute.backend == "job_server":
        from fhir_pipeline.job_server_job import JobServerOperator

        return JobServerOperator(job=job, job_args=job_args, server_url=compute.job_server_url, **kwargs)
    return SparkJobOperator(job=job, job_args=job_args, **kwargs)
