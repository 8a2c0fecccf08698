"""Calibration: a model's probabilities brought in line with the rates observed, by an
isotonic regression of the label on the model's probability, fitted on the validation
split and appended to the model as its last stage (its output, CALIBRATED_SCORE, is the
score `candidates.scored` reads). Training keeps it only when it lowers the Brier score
on the test split; the reliability curve shows both."""

from __future__ import annotations

from pyspark.ml import PipelineModel
from pyspark.ml.regression import IsotonicRegression
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from spark_jobs.ml.labels import LABEL

CALIBRATED_SCORE = "calibrated_score"
RELIABILITY_BINS = 10


def calibrated(model: PipelineModel, validation: DataFrame) -> PipelineModel:
    """`model` followed by an isotonic map of its positive-class probability, fitted on
    `validation` (rows with LABEL)."""
    predictions = model.transform(validation).withColumn(LABEL, F.col(LABEL).cast("double"))
    isotonic = IsotonicRegression(
        featuresCol="probability", featureIndex=1, labelCol=LABEL, predictionCol=CALIBRATED_SCORE
    ).fit(predictions)
    return PipelineModel(stages=[*model.stages, isotonic])


def brier_score(rows) -> float:
    """Mean squared difference between score and label over collected (score, LABEL) rows."""
    return sum((r.score - r[LABEL]) ** 2 for r in rows) / max(1, len(rows))


def reliability_curve(rows, bins: int = RELIABILITY_BINS) -> list[dict]:
    """Per score bin of width 1/bins that holds rows: the mean score, the observed rate of
    the label and the row count (a calibrated model's points lie on the diagonal)."""
    grouped: dict[int, list] = {}
    for r in rows:
        grouped.setdefault(min(int(r.score * bins), bins - 1), []).append(r)
    return [
        {
            "bin": index,
            "mean_score": sum(r.score for r in members) / len(members),
            "observed_rate": sum(r[LABEL] for r in members) / len(members),
            "rows": len(members),
        }
        for index, members in sorted(grouped.items())
    ]
