"""A model's dataset: its label's rows with its declared features as doubles, and the
split by patient (a patient's rows are all in train, validation or test)."""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from spark_jobs.ml.labels import LABELS, TrainingSources
from spark_jobs.ml.specs import ModelSpec, check_features


@dataclass(frozen=True)
class Dataset:
    model_name: str
    use_case: str
    rows: DataFrame  # features + LABEL + patient_id_hashed
    features: list[str]
    description: str


def as_doubles(df: DataFrame, columns: list[str]) -> DataFrame:
    return df.select(
        *[F.col(c).cast("double").alias(c) for c in columns],
        *[c for c in df.columns if c not in columns],
    )


def build_dataset(spec: ModelSpec, sources: TrainingSources) -> Dataset:
    rows, description = LABELS[spec.label].rows(sources)
    check_features(spec, rows)
    features = list(spec.features)
    return Dataset(spec.name, spec.use_case, as_doubles(rows, features), features, description)


def split_by_patient(rows: DataFrame, seed: int) -> dict[str, DataFrame]:
    """60/20/20 train/validation/test by a hash of the patient: no patient in two sets."""
    bucket = F.abs(F.xxhash64(F.col("patient_id_hashed"), F.lit(seed))) % 100
    tagged = rows.withColumn("_bucket", bucket)
    return {
        "train": tagged.filter(F.col("_bucket") < 60).drop("_bucket"),
        "validation": tagged.filter((F.col("_bucket") >= 60) & (F.col("_bucket") < 80)).drop("_bucket"),
        "test": tagged.filter(F.col("_bucket") >= 80).drop("_bucket"),
    }
