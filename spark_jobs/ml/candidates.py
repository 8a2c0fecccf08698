"""The candidate pipelines each model is chosen from (XGBoost and logistic regression,
each after a median imputer) and the metrics that choose and report them. Both give
exact per-row reasons (reasons.py); MLlib's random forest and gradient-boosted trees do
not, and were dropped for it (README, Models: what the comparison measured)."""

from __future__ import annotations

from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.classification import LogisticRegression
from pyspark.ml.evaluation import BinaryClassificationEvaluator
from pyspark.ml.feature import Imputer, StandardScaler, VectorAssembler
from pyspark.ml.functions import vector_to_array
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from xgboost.spark import SparkXGBClassifier

from spark_jobs.ml.calibration import CALIBRATED_SCORE
from spark_jobs.ml.labels import LABEL


def imputed(feature: str) -> str:
    """The column holding `feature` with its missing values imputed (the training median)."""
    return f"{feature}__imputed"


def candidate_pipelines(features: list[str], seed: int) -> dict[str, Pipeline]:
    prepare = [
        Imputer(inputCols=features, outputCols=[imputed(c) for c in features], strategy="median"),
        VectorAssembler(inputCols=[imputed(c) for c in features], outputCol="features"),
    ]
    return {
        # One XGBoost worker: its training is a barrier stage, which needs that many free task slots.
        "xgboost": Pipeline(
            stages=[
                *prepare,
                SparkXGBClassifier(
                    features_col="features",
                    label_col=LABEL,
                    num_workers=1,
                    n_estimators=200,
                    max_depth=4,
                    learning_rate=0.05,
                    subsample=0.8,
                    colsample_bytree=0.8,
                    min_child_weight=2,
                    seed=seed,
                ),
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
    """The model's predictions with `score`, its probability of the positive class
    (calibrated when the model carries its calibration stage), and `raw_score`, its
    classifier's own."""
    predictions = model.transform(rows).withColumn("raw_score", vector_to_array("probability")[1])
    score = CALIBRATED_SCORE if CALIBRATED_SCORE in predictions.columns else "raw_score"
    return predictions.withColumn("score", F.col(score))


def classifier(model: PipelineModel):
    """The fitted classifier of a candidate pipeline (before any calibration stage)."""
    return next(
        stage
        for stage in reversed(model.stages)
        if hasattr(stage, "numClasses") or hasattr(stage, "get_booster")  # MLlib's, XGBoost's
    )


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
    estimator = classifier(model)
    if hasattr(estimator, "get_booster"):  # XGBoost: total gain, by feature index (f0, f1, ...)
        gain = estimator.get_booster().get_score(importance_type="total_gain")
        values = [gain.get(f"f{index}", 0.0) for index in range(len(features))]
    else:  # logistic regression on standardised inputs: |coefficient|
        values = [abs(v) for v in estimator.coefficients.toArray()]
    total = sum(values) or 1.0
    return dict(
        sorted(
            ((f, float(v) / total) for f, v in zip(features, values, strict=True)),
            key=lambda kv: -kv[1],
        )
    )
