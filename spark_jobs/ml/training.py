"""Train, log and register one model in MLflow: the candidates compete on validation AUC,
the winner is calibrated on validation when that lowers its test Brier score
(calibration.py), it is reported on test, and its registered version becomes
`@champion` only when it beats the current champion on the same test rows. The
distributions of the population it scores as of its training date are saved with it:
the reference of scoring's drift checks (drift.py). A model whose data cannot train it
is logged as a skipped run and counted (registry.record_not_retrained)."""

from __future__ import annotations

import datetime as dt
import json
import logging
import tempfile
from functools import partial
from importlib.metadata import version
from pathlib import Path

from pyspark.ml import Pipeline, PipelineModel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from spark_jobs import lineage
from spark_jobs.lakehouse import run_concurrently
from spark_jobs.ml import drift, registry
from spark_jobs.ml.calibration import brier_score, calibrated, reliability_curve
from spark_jobs.ml.candidates import (
    auc,
    best_threshold,
    candidate_pipelines,
    classification_metrics,
    classifier,
    feature_importances,
    roc_points,
    scored,
)
from spark_jobs.ml.charts import save_charts
from spark_jobs.ml.datasets import Dataset, split_by_patient
from spark_jobs.ml.labels import LABEL
from spark_jobs.ml.model_card import SUBGROUP_COLUMNS, model_card
from spark_jobs.ml.registry import CHAMPION

log = logging.getLogger("fhir_lakehouse.train")

# What serving a logged model imports (the packages MLflow's inference finds).
SERVING_PACKAGES = ("mlflow", "numpy", "pandas", "pyspark", "pyspark-client", "scipy", "xgboost-cpu")
# The classifier's parameters logged to MLflow (logistic regression's, XGBoost's).
LOGGED_HYPERPARAMETERS = ("maxIter", "regParam", "n_estimators", "max_depth", "learning_rate")
GOVERNANCE_TAGS = {
    "hipaa_compliant": "true",
    "data_source": "fhir_gold_layer",
    "phi_included": "false",
}


def serving_requirements() -> list[str]:
    """The logged model's pip requirements, pinned to what trained it: what MLflow would
    infer, without its inference, which loads the model in a second Spark driver (a slow
    start, paid for every model)."""
    return [f"{package}=={version(package)}" for package in SERVING_PACKAGES]


def experiment_for(mlflow, name: str, artifact_root: str) -> str:
    existing = mlflow.get_experiment_by_name(name)
    if existing:
        return existing.experiment_id
    return mlflow.create_experiment(name, artifact_location=f"{artifact_root.rstrip('/')}/{name}")


def champion_auc(mlflow, client, name: str, test: DataFrame) -> tuple[str | None, float | None]:
    """(version, AUC on these test rows) of the current champion, if it can be scored."""
    champion = registry.champion_version(client, name)
    if champion is None:
        return None, None
    version = str(champion.version)
    try:
        model = mlflow.spark.load_model(f"models:/{name}@{CHAMPION}")
        return version, auc(scored(model, test))
    except Exception as exc:  # a champion trained on other features cannot score these rows
        log.warning(
            "Champion %s v%s cannot be scored on the new test rows (%s); it will be replaced",
            name,
            version,
            exc,
        )
        return version, None


def too_few_labels(sizes: dict[str, int], positives: dict[str, int], min_rows: int) -> str | None:
    """Why these splits cannot train and evaluate a model, or None when they can."""
    if min(sizes.values()) >= min_rows and all(0 < positives[k] < sizes[k] for k in sizes):
        return None
    return (
        f"not enough labelled rows to train and evaluate (sizes {sizes}, positives {positives}; "
        f"need >= {min_rows} rows per split and both classes in each)"
    )


def training_inputs(as_of: dt.date, data_versions: dict[str, int]) -> dict[str, str]:
    """What a training attempt read: a model is not retrained on the same inputs."""
    return {"as_of": str(as_of), **{table: str(version) for table, version in data_versions.items()}}


def record_skip(mlflow, client, dataset: Dataset, inputs: dict[str, str], reason: str, counts: dict) -> dict:
    """Log a model that could not be trained as a skipped MLflow run, and count it."""
    with mlflow.start_run(run_name=f"skipped_{dataset.model_name}_{inputs['as_of']}") as run:
        mlflow.set_tags(
            {
                **GOVERNANCE_TAGS,
                "use_case": dataset.use_case,
                "training_date": inputs["as_of"],
                "label_definition": dataset.description,
                "outcome": "skipped",
                "skip_reason": reason,
            }
        )
        mlflow.log_params(
            {
                "as_of": inputs["as_of"],
                **counts,
                **{f"data_version_{k}": v for k, v in inputs.items() if k != "as_of"},
            }
        )
    skips = registry.record_not_retrained(client, dataset.model_name, inputs, reason)
    champion = f"its champion's runs in a row without retraining: {skips}" if skips else "no champion yet"
    log.warning(
        "%s not trained: %s (MLflow run %s; %s)", dataset.model_name, reason, run.info.run_id, champion
    )
    return {"skipped": reason, "run_id": run.info.run_id, "retrain_skips_in_a_row": skips}


def train_and_register(
    spark: SparkSession,
    dataset: Dataset,
    *,
    as_of: dt.date,
    artifact_root: str,
    seed: int,
    data_versions: dict[str, int],
    min_rows: int,
) -> dict:
    """Train, log and register one model; {"skipped": reason, ...} when its data cannot."""
    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_experiment(experiment_id=experiment_for(mlflow, dataset.model_name, artifact_root))
    client = MlflowClient()
    inputs = training_inputs(as_of, data_versions)
    splits = {k: v.cache() for k, v in split_by_patient(dataset.rows, seed).items()}
    sizes = {k: v.count() for k, v in splits.items()}
    positives = {k: v.filter(F.col(LABEL) == 1).count() for k, v in splits.items()}
    reason = too_few_labels(sizes, positives, min_rows)
    if reason is not None:
        for frame in splits.values():
            frame.unpersist()
        counts = {
            **{f"{k}_rows": v for k, v in sizes.items()},
            **{f"{k}_positives": v for k, v in positives.items()},
        }
        return {
            **record_skip(mlflow, client, dataset, inputs, reason, counts),
            "rows": sizes,
            "positives": positives,
        }

    def fit(pipeline: Pipeline) -> tuple[PipelineModel, float]:
        model = pipeline.fit(splits["train"])
        return model, auc(scored(model, splits["validation"]))

    # The candidates fit side by side: one fit's many small jobs leave a core idle that another fills.
    candidates = run_concurrently(
        {a: partial(fit, p) for a, p in candidate_pipelines(dataset.features, seed).items()}
    )
    fitted = {algorithm: model for algorithm, (model, _) in candidates.items()}
    validation_auc = {algorithm: score for algorithm, (_, score) in candidates.items()}
    algorithm = max(validation_auc, key=validation_auc.get)
    options = {"uncalibrated": fitted[algorithm]}
    options["calibrated"] = calibrated(options["uncalibrated"], splits["validation"])
    kept_columns = ["score", LABEL, *[c for c in SUBGROUP_COLUMNS if c in dataset.features]]
    test_scores = {k: scored(m, splits["test"]).select(kept_columns).collect() for k, m in options.items()}
    brier = {k: brier_score(rows) for k, rows in test_scores.items()}
    # Calibration stays when its probabilities are closer to the test outcomes.
    kept = "calibrated" if brier["calibrated"] < brier["uncalibrated"] else "uncalibrated"
    model, test_rows = options[kept], test_scores[kept]
    calibration = "isotonic" if kept == "calibrated" else "none"
    threshold = best_threshold(scored(model, splits["validation"]))
    test_auc = auc(scored(model, splits["test"]))
    metrics = {"auc": test_auc, "brier": brier[kept], **classification_metrics(test_rows, threshold)}
    reliability = {k: reliability_curve(rows) for k, rows in test_scores.items()}
    importances = feature_importances(model, dataset.features)
    reference = drift.reference_distribution(
        drift.measured(scored(model, dataset.population), dataset.features)
    )

    with mlflow.start_run(run_name=f"{algorithm}_{dataset.model_name}_{as_of}") as run:
        mlflow.set_tags(
            {
                **GOVERNANCE_TAGS,
                "use_case": dataset.use_case,
                "training_date": str(as_of),
                "label_definition": dataset.description,
                "algorithm": algorithm,
                "outcome": "trained",
            }
        )
        estimator = classifier(model)
        mlflow.log_params(
            {
                "algorithm": algorithm,
                "calibration": calibration,
                "as_of": str(as_of),
                "seed": seed,
                "threshold": threshold,
                "feature_count": len(dataset.features),
                **{f"{k}_rows": v for k, v in sizes.items()},
                **{f"{k}_positives": v for k, v in positives.items()},
                **{
                    f"param_{p.name}": v
                    for p, v in estimator.extractParamMap().items()
                    if p.name in LOGGED_HYPERPARAMETERS
                },
                **{f"data_version_{table}": version for table, version in data_versions.items()},
            }
        )
        mlflow.log_metrics({f"test_{k}": v for k, v in metrics.items()})
        mlflow.log_metrics({f"test_brier_{k}": v for k, v in brier.items()})
        mlflow.log_metrics({f"validation_auc_{k}": v for k, v in validation_auc.items()})
        mlflow.log_metrics({f"feature_importance_{k}": v for k, v in importances.items()})
        with tempfile.TemporaryDirectory() as tmp:
            directory = Path(tmp)
            save_charts(directory, roc_points(test_rows), importances, reliability, dataset.model_name)
            (directory / "calibration.json").write_text(
                json.dumps({"kept": kept, "test_brier": brier, "reliability": reliability}, indent=2)
            )
            (directory / "feature_importance.json").write_text(json.dumps(importances, indent=2))
            (directory / "features.json").write_text(json.dumps(dataset.features, indent=2))
            mlflow.log_artifacts(tmp)
        mlflow.log_dict(reference, drift.REFERENCE_ARTIFACT)
        info = mlflow.spark.log_model(
            model, "model", registered_model_name=dataset.model_name, pip_requirements=serving_requirements()
        )
        version = str(info.registered_model_version)
        lineage.wrote_model(dataset.model_name, version, run.info.run_id)
        card = model_card(
            model_name=dataset.model_name,
            version=version,
            as_of=str(as_of),
            label_definition=dataset.description,
            algorithm=algorithm,
            sizes=sizes,
            positives=positives,
            data_versions=data_versions,
            test_rows=test_rows,
            threshold=threshold,
            calibration=calibration,
            brier=brier,
            importances=importances,
            seed=seed,
        )
        mlflow.log_text(card, "model_card.md")
        champion_version, champion_score = champion_auc(mlflow, client, dataset.model_name, splits["test"])
        promote = champion_score is None or test_auc > champion_score
        if promote:
            client.set_registered_model_alias(dataset.model_name, CHAMPION, version)
        decision = (
            f"promoted v{version} (test AUC {test_auc:.4f})"
            if promote
            else f"kept champion v{champion_version} (AUC {champion_score:.4f} >= {test_auc:.4f})"
        )
        mlflow.set_tag("champion_decision", decision)
        client.set_model_version_tag(dataset.model_name, version, "test_auc", f"{test_auc:.4f}")
        client.set_model_version_tag(dataset.model_name, version, "threshold", str(threshold))
        for k, v in GOVERNANCE_TAGS.items():
            client.set_model_version_tag(dataset.model_name, version, k, v)
    registry.record_trained(client, dataset.model_name, inputs)
    for frame in splits.values():
        frame.unpersist()
    log.info(
        "%s: %s won on validation (%s); test %s; %s",
        dataset.model_name,
        algorithm,
        {k: round(v, 4) for k, v in validation_auc.items()},
        {k: round(v, 4) for k, v in metrics.items()},
        decision,
    )
    return {
        "run_id": run.info.run_id,
        "version": version,
        "algorithm": algorithm,
        "promoted": promote,
        "validation_auc": validation_auc,
        "calibration": calibration,
        **{f"test_{k}": v for k, v in metrics.items()},
        **{f"test_brier_{k}": v for k, v in brier.items()},
        "rows": sizes,
        "positives": positives,
    }
