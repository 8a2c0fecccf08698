"""Reasons per score: the REASONS features that moved a row's score most, each with its
value and its signed contribution on the log-odds scale of the model's classifier, before
calibration (the score shown is the calibrated probability). A row's contributions and
the classifier's expected log-odds add up to its log-odds.

- XGBoost: exact TreeSHAP values, computed by the model's own prediction UDF on the
  executors (xgboost's `pred_contribs`).
- Logistic regression: coefficient x (imputed value - training mean) / training standard
  deviation, the exact SHAP value of a linear model over independent features.
MLlib's random forest and gradient-boosted trees have no exact per-row attribution:
`explainable` says which fitted models can give reasons.
"""

from __future__ import annotations

from pyspark.ml import PipelineModel
from pyspark.ml.classification import LogisticRegressionModel
from pyspark.ml.feature import StandardScalerModel
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from spark_jobs.ml.candidates import classifier, imputed

REASONS = 3
REASONS_COLUMN = "reasons"
CONTRIBUTIONS = "feature_contributions"


def _is_xgboost(estimator) -> bool:
    return type(estimator).__module__.startswith("xgboost.")


def explainable(model: PipelineModel) -> bool:
    estimator = classifier(model)
    return isinstance(estimator, LogisticRegressionModel) or _is_xgboost(estimator)


def explaining(model: PipelineModel) -> PipelineModel:
    """`model`, its XGBoost stage (if any) set to emit each row's contributions too."""
    estimator = classifier(model)
    if _is_xgboost(estimator):
        estimator.set(estimator.pred_contrib_col, CONTRIBUTIONS)
    return model


def contributions(model: PipelineModel, features: list[str]) -> list[Column]:
    """Each feature's contribution to the log-odds, over the predictions of explaining(model)."""
    estimator = classifier(model)
    if _is_xgboost(estimator):
        # A binary classifier's contributions: one array, of one value per feature and then the bias.
        values = F.col(CONTRIBUTIONS)[0]
        return [values[index] for index in range(len(features))]
    if not isinstance(estimator, LogisticRegressionModel):
        raise ValueError(f"{type(estimator).__name__} gives no exact per-row contributions")
    scaler = next(stage for stage in model.stages if isinstance(stage, StandardScalerModel))
    coefficients, means, deviations = (v.toArray() for v in (estimator.coefficients, scaler.mean, scaler.std))
    return [
        F.lit(coefficient / deviation) * (F.col(imputed(feature)) - F.lit(mean)) if deviation else F.lit(0.0)
        for feature, coefficient, mean, deviation in zip(
            features, coefficients, means, deviations, strict=True
        )
    ]


def top_reasons(features: list[str], contributions: list[Column], count: int = REASONS) -> Column:
    """The `count` features of largest absolute contribution, largest first: an array of
    (feature, value as read, missing when it was imputed; contribution)."""
    entries = F.array(
        *[
            F.struct(
                F.lit(feature).alias("feature"),
                F.col(feature).cast("double").alias("value"),
                contribution.cast("double").alias("contribution"),
            )
            for feature, contribution in zip(features, contributions, strict=True)
        ]
    )

    def larger_first(left: Column, right: Column) -> Column:
        a, b = F.abs(left["contribution"]), F.abs(right["contribution"])
        return F.when(a > b, -1).when(a < b, 1).otherwise(0)

    return F.slice(F.array_sort(entries, larger_first), 1, count)


def with_reasons(model: PipelineModel, predictions: DataFrame, features: list[str]) -> DataFrame:
    """Predictions of explaining(model) with REASONS_COLUMN (null for a model without
    exact contributions)."""
    if not explainable(model):
        empty = "array<struct<feature:string,value:double,contribution:double>>"
        return predictions.withColumn(REASONS_COLUMN, F.lit(None).cast(empty))
    return predictions.withColumn(REASONS_COLUMN, top_reasons(features, contributions(model, features)))
