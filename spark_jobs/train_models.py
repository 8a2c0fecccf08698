"""Train the diabetes-risk and 30-day-readmission models with Spark MLlib, track
them in MLflow, register them and promote a champion.

    python -m spark_jobs.train_models --lakehouse <root-uri> --tracking-uri <uri> --as-of D

Labels never come from their own inputs (SPEC §5):
- fhir_diabetes_risk: features are chronic_disease_features computed as of the
  cutoff T = D - horizon (default 365 days), from data dated on or before T.
  The label is new diabetes in (T, D]: an HbA1c >= 6.5 % or glucose >= 126 mg/dL
  result (the diabetes_risk_flag thresholds) or a diabetes diagnosis dated after T.
  The population is patients not flagged and not diagnosed at T who were tested
  (or diagnosed) in (T, D]: the model predicts diabetes onset within the horizon.
- fhir_readmission_30d: one row per discharge from gold readmission_features
  (features as of the discharge time; label = another inpatient stay starting
  within 30 days after it), only discharges whose 30 days are over by D.
Each dataset is split by patient (a patient's rows are all in train, validation
or test). Candidates (random forest, gradient-boosted trees, logistic
regression) are compared on validation AUC; the winner is refit on train and
reported on test. The registered version becomes `@champion` only when it beats
the current champion on the same test rows.

Nothing to do is not a failure (the job ends JobSkipped, the task is skipped):
- no gold yet, or no new gold since a model was last trained (same as-of date and
  table versions; --force retrains anyway): that model is left as it is;
- too few labelled rows for a model: its attempt is logged to MLflow as a skipped
  run with the counts, the other model still trains, and a model that has a champion
  counts the runs in a row it went without retraining (spark_jobs/model_registry.py),
  which the training DAG pages on.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from functools import partial
from importlib.metadata import version
from pathlib import Path

from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.classification import GBTClassifier, LogisticRegression, RandomForestClassifier
from pyspark.ml.evaluation import BinaryClassificationEvaluator
from pyspark.ml.feature import Imputer, StandardScaler, VectorAssembler
from pyspark.ml.functions import vector_to_array
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from spark_jobs import codesets, gold_aggregate, model_registry
from spark_jobs.lakehouse import (
    JobSkipped,
    configure_logging,
    read_table,
    run_concurrently,
    run_job,
    table_path,
)
from spark_jobs.model_registry import CHAMPION
from spark_jobs.session import build_spark_session

log = logging.getLogger("fhir_lakehouse.train")

DIABETES_MODEL = "fhir_diabetes_risk"
READMISSION_MODEL = "fhir_readmission_30d"
LABEL = "label"
NOT_FEATURES = {
    "patient_id_hashed",
    "encounter_id",
    "as_of_date",
    "discharge_date",
    "age_bucket",
    "gender",
    "readmission_30d",
    "label_observable",
    "days_to_readmission",
    # Flags that define (or, at the cutoff, restate) the diabetes label.
    "diabetes_risk_flag",
    "has_diabetes_dx",
}
# What serving a logged model imports (the packages MLflow's inference finds).
SERVING_PACKAGES = ("mlflow", "numpy", "pandas", "pyspark", "pyspark-client", "scipy")
GOVERNANCE_TAGS = {
    "hipaa_compliant": "true",
    "data_source": "fhir_gold_layer",
    "phi_included": "false",
}


@dataclass(frozen=True)
class Dataset:
    model_name: str
    use_case: str
    rows: DataFrame  # features + LABEL + patient_id_hashed
    features: list[str]
    description: str


# --- Datasets (pure: DataFrames in, DataFrames out) ---------------------------------------------


def feature_columns(df: DataFrame) -> list[str]:
    numeric = (T.IntegerType, T.LongType, T.DoubleType, T.FloatType, T.BooleanType, T.DecimalType)
    return [
        f.name for f in df.schema.fields if isinstance(f.dataType, numeric) and f.name not in NOT_FEATURES
    ]


def as_doubles(df: DataFrame, columns: list[str]) -> DataFrame:
    return df.select(
        *[F.col(c).cast("double").alias(c) for c in columns],
        *[c for c in df.columns if c not in columns],
    )


def diabetes_onset_labels(inputs: dict[str, DataFrame], cutoff: dt.date, as_of: dt.date) -> DataFrame:
    """Per patient with evidence in (cutoff, as_of]: 1 when a result is in the diabetic
    range (the `diabetes` rule of include/codesets/clinical_thresholds.json, which
    diabetes_risk_flag applies to 90-day means) or a diabetes diagnosis starts there,
    else 0 (tested, never in range)."""
    in_horizon = lambda column: (column > F.lit(cutoff)) & (column <= F.lit(as_of))  # noqa: E731
    diabetic = codesets.clinical_rules()["diabetes"]
    results = (
        inputs["measurements"]
        .filter(F.col("measure").isin(*diabetic.measures) & in_horizon(F.col("observation_date")))
        .select(
            "patient_id_hashed",
            diabetic.met(lambda measure: F.when(F.col("measure") == measure, F.col("value_numeric")))
            .cast("int")
            .alias(LABEL),
        )
    )
    diabetes_codes = codesets.condition_groups()["diabetes"]
    diagnoses = (
        inputs["conditions"]
        .filter(F.col("code").isin(*diabetes_codes) & in_horizon(F.coalesce("onset_date", "recorded_date")))
        .select("patient_id_hashed", F.lit(1).alias(LABEL))
    )
    return results.unionByName(diagnoses).groupBy("patient_id_hashed").agg(F.max(LABEL).alias(LABEL))


def diabetes_dataset(inputs: dict[str, DataFrame], as_of: dt.date, horizon_days: int) -> Dataset:
    cutoff = as_of - dt.timedelta(days=horizon_days)
    at_cutoff = gold_aggregate.chronic_disease_features(cutoff, **inputs)
    population = at_cutoff.filter(~F.col("diabetes_risk_flag") & ~F.col("has_diabetes_dx"))
    rows = population.join(diabetes_onset_labels(inputs, cutoff, as_of), "patient_id_hashed")
    features = feature_columns(at_cutoff)
    return Dataset(
        DIABETES_MODEL,
        "diabetes_risk_prediction",
        as_doubles(rows, features),
        features,
        f"features as of {cutoff} (D - {horizon_days} days); label: diabetic-range HbA1c/glucose "
        f"or a diabetes diagnosis in ({cutoff}, {as_of}]",
    )


def readmission_dataset(readmission_features: DataFrame) -> Dataset:
    rows = readmission_features.filter(F.col("label_observable")).withColumn(
        LABEL, F.col("readmission_30d").cast("int")
    )
    features = feature_columns(readmission_features)
    return Dataset(
        READMISSION_MODEL,
        "readmission_30d_prediction",
        as_doubles(rows, features),
        features,
        "features as of each discharge; label: inpatient readmission within 30 days",
    )


def split_by_patient(rows: DataFrame, seed: int) -> dict[str, DataFrame]:
    """60/20/20 train/validation/test by a hash of the patient: no patient in two sets."""
    bucket = F.abs(F.xxhash64(F.col("patient_id_hashed"), F.lit(seed))) % 100
    tagged = rows.withColumn("_bucket", bucket)
    return {
        "train": tagged.filter(F.col("_bucket") < 60).drop("_bucket"),
        "validation": tagged.filter((F.col("_bucket") >= 60) & (F.col("_bucket") < 80)).drop("_bucket"),
        "test": tagged.filter(F.col("_bucket") >= 80).drop("_bucket"),
    }


# --- Models -----------------------------------------------------------------------------------------


def candidate_pipelines(features: list[str], seed: int) -> dict[str, Pipeline]:
    imputed = [f"{c}__imputed" for c in features]
    prepare = [
        Imputer(inputCols=features, outputCols=imputed, strategy="median"),
        VectorAssembler(inputCols=imputed, outputCol="features"),
    ]
    return {
        "random_forest": Pipeline(
            stages=[
                *prepare,
                RandomForestClassifier(
                    labelCol=LABEL, featuresCol="features", numTrees=100, maxDepth=8, seed=seed
                ),
            ]
        ),
        "gradient_boosted_trees": Pipeline(
            stages=[
                *prepare,
                GBTClassifier(labelCol=LABEL, featuresCol="features", maxIter=40, maxDepth=4, seed=seed),
            ]
        ),
        "logistic_regression": Pipeline(
            stages=[
                *prepare,
                StandardScaler(inputCol="features", outputCol="scaled"),
                LogisticRegression(labelCol=LABEL, featuresCol="scaled", maxIter=100, regParam=0.01),
            ]
        ),
    }


def scored(model: PipelineModel, rows: DataFrame) -> DataFrame:
    return model.transform(rows).withColumn("score", vector_to_array("probability")[1])


def auc(predictions: DataFrame) -> float:
    return BinaryClassificationEvaluator(
        labelCol=LABEL, rawPredictionCol="score", metricName="areaUnderROC"
    ).evaluate(predictions)


def best_threshold(predictions: DataFrame) -> float:
    """The score threshold with the best F1 (chosen on validation, applied to test)."""
    rows = predictions.select("score", LABEL).collect()
    best, best_f1 = 0.5, -1.0
    for candidate in sorted({round(r.score, 3) for r in rows}):
        metrics = classification_metrics(rows, candidate)
        if metrics["f1"] > best_f1:
            best, best_f1 = candidate, metrics["f1"]
    return best


def classification_metrics(rows, threshold: float) -> dict[str, float]:
    tp = sum(1 for r in rows if r.score >= threshold and r[LABEL] == 1)
    fp = sum(1 for r in rows if r.score >= threshold and r[LABEL] == 0)
    fn = sum(1 for r in rows if r.score < threshold and r[LABEL] == 1)
    tn = sum(1 for r in rows if r.score < threshold and r[LABEL] == 0)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "accuracy": (tp + tn) / max(1, len(rows)),
        "precision": precision,
        "recall": recall,
        "f1": f1,
    }


def roc_points(rows) -> list[tuple[float, float]]:
    positives = sum(1 for r in rows if r[LABEL] == 1) or 1
    negatives = (len(rows) - positives) or 1
    points, tp, fp = [(0.0, 0.0)], 0, 0
    for r in sorted(rows, key=lambda r: -r.score):
        tp += r[LABEL] == 1
        fp += r[LABEL] == 0
        points.append((fp / negatives, tp / positives))
    return points


def feature_importances(model: PipelineModel, features: list[str]) -> dict[str, float]:
    estimator = model.stages[-1]
    if hasattr(estimator, "featureImportances"):
        values = estimator.featureImportances.toArray()
    else:  # logistic regression on standardised inputs: |coefficient|
        values = [abs(v) for v in estimator.coefficients.toArray()]
    total = sum(values) or 1.0
    return dict(
        sorted(
            ((f, float(v) / total) for f, v in zip(features, values, strict=True)),
            key=lambda kv: -kv[1],
        )
    )


# --- MLflow ---------------------------------------------------------------------------------------------


def serving_requirements() -> list[str]:
    """The logged model's pip requirements, pinned to what trained it: what MLflow would
    infer, without its inference, which loads the model in a second Spark driver (a slow
    start, paid for every model)."""
    return [f"{package}=={version(package)}" for package in SERVING_PACKAGES]


def _experiment(mlflow, name: str, artifact_root: str) -> str:
    existing = mlflow.get_experiment_by_name(name)
    if existing:
        return existing.experiment_id
    return mlflow.create_experiment(name, artifact_location=f"{artifact_root.rstrip('/')}/{name}")


def _plots(
    directory: Path, roc: list[tuple[float, float]], importances: dict[str, float], title: str
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([p[0] for p in roc], [p[1] for p in roc], label="model")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance")
    ax.set(xlabel="False positive rate", ylabel="True positive rate", title=f"ROC (test) - {title}")
    ax.legend(loc="lower right")
    fig.savefig(directory / "roc_curve.png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    top = list(importances.items())[:20][::-1]
    fig, ax = plt.subplots(figsize=(7, 6))
    ax.barh([k for k, _ in top], [v for _, v in top])
    ax.set(xlabel="relative importance", title=f"Top features - {title}")
    fig.savefig(directory / "feature_importance.png", dpi=100, bbox_inches="tight")
    plt.close(fig)


def champion_auc(mlflow, client, name: str, test: DataFrame) -> tuple[str | None, float | None]:
    """(version, AUC on these test rows) of the current champion, if it can be scored."""
    champion = model_registry.champion_version(client, name)
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
    skips = model_registry.record_not_retrained(client, dataset.model_name, inputs, reason)
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

    mlflow.set_experiment(experiment_id=_experiment(mlflow, dataset.model_name, artifact_root))
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
    model = fitted[algorithm]
    threshold = best_threshold(scored(model, splits["validation"]))
    test_rows = scored(model, splits["test"]).select("score", LABEL).collect()
    test_auc = auc(scored(model, splits["test"]))
    metrics = {"auc": test_auc, **classification_metrics(test_rows, threshold)}
    importances = feature_importances(model, dataset.features)

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
        estimator = model.stages[-1]
        mlflow.log_params(
            {
                "algorithm": algorithm,
                "as_of": str(as_of),
                "seed": seed,
                "threshold": threshold,
                "feature_count": len(dataset.features),
                **{f"{k}_rows": v for k, v in sizes.items()},
                **{f"{k}_positives": v for k, v in positives.items()},
                **{
                    f"param_{p.name}": v
                    for p, v in estimator.extractParamMap().items()
                    if p.name in ("numTrees", "maxDepth", "maxIter", "regParam", "stepSize")
                },
                **{f"data_version_{table}": version for table, version in data_versions.items()},
            }
        )
        mlflow.log_metrics({f"test_{k}": v for k, v in metrics.items()})
        mlflow.log_metrics({f"validation_auc_{k}": v for k, v in validation_auc.items()})
        mlflow.log_metrics({f"feature_importance_{k}": v for k, v in importances.items()})
        with tempfile.TemporaryDirectory() as tmp:
            directory = Path(tmp)
            _plots(directory, roc_points(test_rows), importances, dataset.model_name)
            (directory / "feature_importance.json").write_text(json.dumps(importances, indent=2))
            (directory / "features.json").write_text(json.dumps(dataset.features, indent=2))
            mlflow.log_artifacts(tmp)
        info = mlflow.spark.log_model(
            model, "model", registered_model_name=dataset.model_name, pip_requirements=serving_requirements()
        )
        version = str(info.registered_model_version)
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
    model_registry.record_trained(client, dataset.model_name, inputs)
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
        **{f"test_{k}": v for k, v in metrics.items()},
        "rows": sizes,
        "positives": positives,
    }


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


# --- Job ---------------------------------------------------------------------------------------------------


def default_artifact_root(tracking_uri: str) -> str:
    """Artifacts of a local SQLite store live beside its database; servers decide themselves."""
    if tracking_uri.startswith("sqlite:///"):
        return str(Path(tracking_uri.removeprefix("sqlite:///")).parent / "artifacts")
    return ""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="train_models", description=__doc__.split("\n")[0])
    parser.add_argument("--lakehouse", required=True, help="lakehouse root URI")
    parser.add_argument(
        "--tracking-uri",
        default=os.environ.get("MLFLOW_TRACKING_URI"),
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI)",
    )
    parser.add_argument(
        "--as-of", required=True, type=gold_aggregate.as_of_argument, help="YYYY-MM-DD or latest"
    )
    parser.add_argument("--horizon-days", type=int, default=365, help="diabetes prediction horizon")
    parser.add_argument("--artifact-root", default=None, help="artifact location for new experiments")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--min-rows", type=int, default=20, help="minimum rows per split")
    parser.add_argument(
        "--force", action="store_true", help="retrain even on the inputs a model was last trained on"
    )
    parser.add_argument(
        "--models",
        nargs="+",
        default=[DIABETES_MODEL, READMISSION_MODEL],
        choices=[DIABETES_MODEL, READMISSION_MODEL],
    )
    args = parser.parse_args(argv)
    if not args.tracking_uri:
        parser.error("--tracking-uri (or MLFLOW_TRACKING_URI) is required")
    return args


def run(spark: SparkSession, args: argparse.Namespace) -> dict[str, dict]:
    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(args.tracking_uri)
    # Open the store first, even when there is nothing to train: a new database-backed
    # store is created here, before scoring and the stale-champion check open it side
    # by side (concurrent first opens race on its schema migrations).
    MlflowClient()
    args.as_of = gold_aggregate.gold_as_of(spark, args.lakehouse, args.as_of)
    artifact_root = args.artifact_root or default_artifact_root(args.tracking_uri)
    versions = table_versions(
        spark,
        args.lakehouse,
        [
            ("silver", "patients_normalized"),
            ("silver", "observations_normalized"),
            ("silver", "encounters_normalized"),
            ("silver", "conditions_normalized"),
            ("silver", "medications_normalized"),
            ("gold", "readmission_features"),
        ],
    )
    client = MlflowClient()
    inputs = training_inputs(args.as_of, versions)
    up_to_date = {
        name
        for name in args.models
        if not args.force and model_registry.last_training_inputs(client, name) == inputs
    }
    if up_to_date == set(args.models):
        raise JobSkipped(
            f"no new gold since {', '.join(args.models)} were last trained (as of {args.as_of}, "
            "same table versions); --force retrains"
        )
    silver = gold_aggregate.silver_inputs(spark, args.lakehouse)
    datasets = {
        DIABETES_MODEL: lambda: diabetes_dataset(silver, args.as_of, args.horizon_days),
        READMISSION_MODEL: lambda: readmission_dataset(
            read_table(spark, table_path(args.lakehouse, "gold", "readmission_features")).filter(
                F.col("as_of_date") == F.lit(args.as_of)
            )
        ),
    }
    results = {name: {"skipped": "no new gold since it was last trained"} for name in up_to_date}
    for name in args.models:
        if name not in up_to_date:
            results[name] = train_and_register(
                spark,
                datasets[name](),
                as_of=args.as_of,
                artifact_root=artifact_root,
                seed=args.seed,
                data_versions=versions,
                min_rows=args.min_rows,
            )
    gold_aggregate.release(silver)
    if all("skipped" in result for result in results.values()):
        raise JobSkipped(
            "no model trained: "
            + "; ".join(f"{name}: {result['skipped']}" for name, result in results.items())
        )
    return results


def main(argv: list[str] | None = None, spark: SparkSession | None = None) -> dict[str, dict]:
    configure_logging()
    args = parse_args(argv)
    spark = spark or build_spark_session("fhir-train-models")
    return run(spark, args)


if __name__ == "__main__":
    run_job(main)
