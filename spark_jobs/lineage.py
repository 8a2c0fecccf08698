"""OpenLineage events for the Spark jobs: each job run is one OpenLineage run, a child of
the Airflow task that started it, whose inputs and outputs are the storage locations it
read and wrote (the landing folder, each Delta table, each registered model version).

The jobs record what they touch where they touch it: spark_jobs.lakehouse's readers and
writers and bronze's landing reader call `read()` / `wrote()`, train_models and
score_risk `wrote_model()` / `read_model()`. `job_run()`, around every job's main
(lakehouse.job_exit_status), emits START, then COMPLETE or FAIL with those datasets.

- Transport: openlineage-python's own configuration, the one the Airflow provider falls
  back to: `OPENLINEAGE__TRANSPORT` (JSON: http, file, console, ...), `OPENLINEAGE_URL`
  or `OPENLINEAGE_CONFIG`. None of them set, or `OPENLINEAGE_DISABLED=true`: nothing is
  recorded or emitted. A transport that fails is logged; the job goes on.
- Parent: fhir_contract.LINEAGE_PARENT_ENV and LINEAGE_ROOT_PARENT_ENV, each
  "<namespace>/<job name>/<run id>" (the provider's lineage_parent_id format), from the
  job's environment; the job server takes them from the request instead.
- Datasets are named by the OpenLineage naming spec: `file` + absolute path for local
  paths, `abfss://<container>@<account host>` + path for ADLS, `<scheme>://<bucket>` for
  object stores; a model version is `mlflow` + `<model name>/<version>`, its MLflow run id
  in the dataset's `mlflowModelVersion` facet.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from fhir_contract import LINEAGE_PARENT_ENV, LINEAGE_ROOT_PARENT_ENV, LINEAGE_TRANSPORT_ENV

log = logging.getLogger("fhir_lakehouse.lineage")

# Who wrote the events (OpenLineage wants a URI).
PRODUCER = "urn:fhir-lakehouse:spark_jobs"
JOB_NAME_PREFIX = "fhir_spark_jobs."
MODEL_NAMESPACE = "mlflow"
OBJECT_STORE_SCHEMES = ("s3", "s3a", "gs", "wasbs", "abfss", "abfs", "dbfs", "hdfs")


@dataclass
class Parent:
    namespace: str
    name: str
    run_id: str

    @classmethod
    def parse(cls, value: str | None) -> Parent | None:
        """'<namespace>/<job name>/<run id>'; None for an empty value."""
        if not value:
            return None
        namespace, _, rest = value.partition("/")
        name, _, run_id = rest.rpartition("/")
        if not (namespace and name and run_id):
            raise ValueError(f"a lineage parent is '<namespace>/<job name>/<run id>', not {value!r}")
        uuid.UUID(run_id)  # OpenLineage run ids are UUIDs: a ValueError otherwise
        return cls(namespace, name, run_id)


@dataclass
class JobLineage:
    """What one job run read and wrote, in the order it first touched each dataset."""

    inputs: dict[tuple[str, str], None] = field(default_factory=dict)  # an ordered set
    outputs: dict[tuple[str, str], dict] = field(default_factory=dict)  # dataset -> its facets
    failure: str | None = None

    def fail(self, message: str) -> None:
        """Mark the run failed although the job returns normally (a permanent failure)."""
        self.failure = message


_current: ContextVar[JobLineage | None] = ContextVar("lineage_run", default=None)


def enabled() -> bool:
    if os.environ.get("OPENLINEAGE_DISABLED", "").lower() in ("true", "1"):
        return False
    return any(os.environ.get(name) for name in LINEAGE_TRANSPORT_ENV)


def dataset(uri: str) -> tuple[str, str]:
    """(namespace, name) of a storage location, by the OpenLineage naming spec."""
    parts = urlsplit(uri)
    if parts.scheme in OBJECT_STORE_SCHEMES:
        return f"{parts.scheme}://{parts.netloc}", parts.path.strip("/")
    path = parts.path if parts.scheme == "file" else uri
    return "file", os.path.abspath(path).rstrip("/") or "/"


def read(uri: str) -> None:
    """Record `uri` as an input of the running job (nothing when lineage is off)."""
    run = _current.get()
    if run is not None:
        run.inputs.setdefault(dataset(uri))


def wrote(uri: str) -> None:
    """Record `uri` as an output of the running job."""
    run = _current.get()
    if run is not None:
        run.outputs.setdefault(dataset(uri), {})


def read_model(name: str, version: str) -> None:
    """Record a registered model version as an input (the model a job scored with)."""
    run = _current.get()
    if run is not None:
        run.inputs.setdefault((MODEL_NAMESPACE, f"{name}/{version}"))


def wrote_model(name: str, version: str, mlflow_run_id: str) -> None:
    """Record a registered model version as an output, with the MLflow run that logged it."""
    run = _current.get()
    if run is not None:
        run.outputs[(MODEL_NAMESPACE, f"{name}/{version}")] = {
            "mlflowModelVersion": {"name": name, "version": version, "runId": mlflow_run_id}
        }


@contextmanager
def job_run(job: str, parent: str | None = None, root: str | None = None) -> Iterator[JobLineage]:
    """One OpenLineage run around a job: START, then COMPLETE, or FAIL when the block
    raises or `fail()` was called. `parent`/`root` default to the environment's."""
    run = JobLineage()
    if not enabled():
        yield run
        return
    try:
        from openlineage.client import OpenLineageClient
        from openlineage.client.uuid import generate_new_uuid

        client = OpenLineageClient()
    except Exception as exc:  # not installed, or a transport it cannot build
        log.warning("OpenLineage is configured but unusable (%s): no lineage for %s", exc, job)
        yield run
        return
    run_id = str(generate_new_uuid())
    try:
        parents = (
            Parent.parse(parent or os.environ.get(LINEAGE_PARENT_ENV)),
            Parent.parse(root or os.environ.get(LINEAGE_ROOT_PARENT_ENV)),
        )
    except ValueError as exc:  # a run without its parent beats no run
        log.warning("OpenLineage run of %s has no parent: %s", job, exc)
        parents = (None, None)
    token = _current.set(run)
    _emit(client, "START", job, run_id, parents, run)
    try:
        yield run
    except BaseException as exc:
        run.fail(f"{type(exc).__name__}: {exc}")
        raise
    finally:
        _current.reset(token)
        _emit(client, "FAIL" if run.failure else "COMPLETE", job, run_id, parents, run)


def _emit(
    client, state: str, job: str, run_id: str, parents: tuple[Parent | None, Parent | None], run: JobLineage
):
    try:
        client.emit(_event(state, job, run_id, parents, run))
    except Exception as exc:  # lineage must never fail the job it describes
        log.warning("OpenLineage %s event of %s not sent: %s", state, job, exc)


def _event(state: str, job: str, run_id: str, parents: tuple[Parent | None, Parent | None], run: JobLineage):
    from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
    from openlineage.client.facet_v2 import error_message_run, job_type_job, parent_run

    parent, root = parents
    run_facets: dict = {}
    if parent is not None:
        root = root or parent
        run_facets["parent"] = parent_run.ParentRunFacet(
            run=parent_run.Run(runId=parent.run_id),
            job=parent_run.Job(namespace=parent.namespace, name=parent.name),
            root=parent_run.Root(
                run=parent_run.RootRun(runId=root.run_id),
                job=parent_run.RootJob(namespace=root.namespace, name=root.name),
            ),
        )
    if state == "FAIL":
        run_facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
            message=run.failure or "", programmingLanguage="python"
        )
    namespace = parent.namespace if parent else os.environ.get("OPENLINEAGE_NAMESPACE", "default")
    done = state != "START"
    return RunEvent(
        eventType=RunState[state],
        eventTime=dt.datetime.now(dt.UTC).isoformat(),
        run=Run(runId=run_id, facets=run_facets),
        job=Job(
            namespace=namespace,
            name=f"{JOB_NAME_PREFIX}{job}",
            facets={
                "jobType": job_type_job.JobTypeJobFacet(
                    processingType="BATCH", integration="SPARK", jobType="JOB"
                )
            },
        ),
        inputs=[InputDataset(namespace=ns, name=name) for ns, name in run.inputs] if done else [],
        outputs=[
            OutputDataset(namespace=ns, name=name, facets=_model_facets(facets))
            for (ns, name), facets in run.outputs.items()
        ]
        if done
        else [],
        producer=PRODUCER,
    )


def _model_facets(facets: dict) -> dict:
    if "mlflowModelVersion" not in facets:
        return {}
    from spark_jobs.lineage_facets import MlflowModelVersionDatasetFacet

    return {"mlflowModelVersion": MlflowModelVersionDatasetFacet(**facets["mlflowModelVersion"])}
