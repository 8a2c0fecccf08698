"""The train_models job: train every declared model (include/ml/models.json) on gold as
of one date, track them in MLflow, register them and promote a champion; then write the
stale-champion pages (stale_champions) into the job summary.

Nothing to do is not a failure (the job ends JobSkipped, the task is skipped):
- no gold yet, or no new gold since a model was last trained (same as-of date and
  table versions; force retrains anyway): that model is left as it is;
- too few labelled rows for a model: its attempt is logged to MLflow as a skipped
  run with the counts, the other model still trains, and a model that has a champion
  counts the runs in a row it went without retraining (registry), which pages once
  per episode after `page_after_retrain_skips` of them.
The summary is written whenever a path is given, also when the job ends JobSkipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from pathlib import Path

from pyspark.sql import SparkSession

from fhir_contract import table_path
from spark_jobs.gold.inputs import release, silver_inputs
from spark_jobs.gold.tables import AsOf, gold_as_of, gold_slice
from spark_jobs.lakehouse import JobSkipped
from spark_jobs.ml import registry
from spark_jobs.ml.datasets import build_dataset
from spark_jobs.ml.labels import TrainingSources
from spark_jobs.ml.specs import ModelSpecError, model_specs
from spark_jobs.ml.stale_champions import write_stale_champion_pages
from spark_jobs.ml.training import train_and_register, training_inputs

# The Delta tables a training attempt reads: a model is not retrained while none changed.
TRAINING_TABLES = [
    ("silver", "patients_normalized"),
    ("silver", "observations_normalized"),
    ("silver", "encounters_normalized"),
    ("silver", "conditions_normalized"),
    ("silver", "medications_normalized"),
    ("gold", "readmission_features"),
]


def default_artifact_root(tracking_uri: str) -> str:
    """Artifacts of a local SQLite store live beside its database; servers decide themselves."""
    if tracking_uri.startswith("sqlite:///"):
        return str(Path(tracking_uri.removeprefix("sqlite:///")).parent / "artifacts")
    return ""


def table_versions(spark: SparkSession, lakehouse: str, tables: list[tuple[str, str]]) -> dict[str, int]:
    from delta.tables import DeltaTable

    return {
        f"{layer}_{table}": DeltaTable.forPath(spark, table_path(lakehouse, layer, table))
        .history(1)
        .select("version")
        .first()
        .version
        for layer, table in tables
    }


def train_models(
    spark: SparkSession,
    client,
    *,
    lakehouse: str,
    as_of: AsOf,
    models: Sequence[str],
    artifact_root: str,
    horizon_days: int,
    seed: int,
    min_rows: int,
    force: bool,
) -> dict[str, dict]:
    """Train each of `models` that has new inputs (or all, with `force`); the results by model."""
    as_of = gold_as_of(spark, lakehouse, as_of)
    versions = table_versions(spark, lakehouse, TRAINING_TABLES)
    inputs = training_inputs(as_of, versions)
    up_to_date = {
        name for name in models if not force and registry.last_training_inputs(client, name) == inputs
    }
    if up_to_date == set(models):
        raise JobSkipped(
            f"no new gold since {', '.join(models)} were last trained (as of {as_of}, "
            "same table versions); --force retrains"
        )
    silver = silver_inputs(spark, lakehouse)
    sources = TrainingSources(as_of, horizon_days, silver, partial(gold_slice, spark, lakehouse, as_of=as_of))
    results = {name: {"skipped": "no new gold since it was last trained"} for name in up_to_date}
    for name in models:
        if name not in up_to_date:
            results[name] = train_and_register(
                spark,
                build_dataset(model_specs()[name], sources),
                as_of=as_of,
                artifact_root=artifact_root,
                seed=seed,
                data_versions=versions,
                min_rows=min_rows,
            )
    release(silver)
    if all("skipped" in result for result in results.values()):
        raise JobSkipped(
            "no model trained: "
            + "; ".join(f"{name}: {result['skipped']}" for name, result in results.items())
        )
    return results


def run(
    spark: SparkSession,
    *,
    lakehouse: str,
    tracking_uri: str,
    as_of: AsOf,
    horizon_days: int = 365,
    artifact_root: str | None = None,
    seed: int = 42,
    min_rows: int = 20,
    force: bool = False,
    models: Sequence[str] | None = None,
    page_after_retrain_skips: int | None = None,
    summary_out: str | None = None,
) -> dict[str, dict]:
    """Train `models` (default: every declared model) as of `as_of` (a date or "latest");
    with `summary_out`, write the stale-champion pages there (none without
    `page_after_retrain_skips`). The results by model."""
    import mlflow
    from mlflow.tracking import MlflowClient

    declared = model_specs()
    models = list(models or declared)
    unknown = [name for name in models if name not in declared]
    if unknown:
        raise ModelSpecError(f"unknown model(s) {unknown}; include/ml/models.json declares {list(declared)}")
    mlflow.set_tracking_uri(tracking_uri)
    # Open the store first, even when there is nothing to train: a new database-backed
    # store is created here, before scoring and the Azure ML deployment open it side
    # by side (concurrent first opens race on its schema migrations).
    client = MlflowClient()
    skipped: JobSkipped | None = None
    try:
        results = train_models(
            spark,
            client,
            lakehouse=lakehouse,
            as_of=as_of,
            models=models,
            artifact_root=artifact_root or default_artifact_root(tracking_uri),
            horizon_days=horizon_days,
            seed=seed,
            min_rows=min_rows,
            force=force,
        )
    except JobSkipped as exc:
        results, skipped = {}, exc
    if summary_out is not None:
        write_stale_champion_pages(spark, client, page_after_retrain_skips, summary_out)
    if skipped is not None:
        raise skipped
    return results
