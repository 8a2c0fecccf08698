"""A model's dataset: its label's rows with its declared features as doubles, the split
by patient (a patient's rows are all in train, validation or test), and the population
it scores (one row per patient)."""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import DataFrame, Window
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
    population: DataFrame  # what scoring scores as of the training date: drift's reference


def latest_discharge_per_patient(readmission_features: DataFrame) -> DataFrame:
    latest = Window.partitionBy("patient_id_hashed").orderBy(F.col("discharge_date").desc(), "encounter_id")
    return (
        readmission_features.withColumn("_rank", F.row_number().over(latest))
        .filter("_rank = 1")
        .drop("_rank")
    )


def scored_subjects(rows: DataFrame, source_table: str) -> DataFrame:
    """The rows a model scores: one per patient (a patient's latest stay for readmission)."""
    return latest_discharge_per_patient(rows) if source_table == "readmission_features" else rows


def as_doubles(df: DataFrame, columns: list[str]) -> DataFrame:
    return df.select(
        *[F.col(c).cast("double").alias(c) for c in columns],
        *[c for c in df.columns if c not in columns],
    )


def build_dataset(spec: ModelSpec, sources: TrainingSources) -> Dataset:
    rows, description = LABELS[spec.label].rows(sources)
    check_features(spec, rows)
    features = list(spec.features)
    population = as_doubles(scored_subjects(sources.gold(spec.source_table), spec.source_table), features)
    return Dataset(spec.name, spec.use_case, as_doubles(rows, features), features, description, population)


def split_by_patient(rows: DataFrame, seed: int) -> dict[str, DataFrame]:
    """60/20/20 train/validation/test by a hash of the patient: no patient in two sets."""
    bucket = F.abs(F.xxhash64(F.col("patient_id_hashed"), F.lit(seed))) % 100
    tagged = rows.withColumn("_bucket", bucket)
    return {
        "train": tagged.filter(F.col("_bucket") < 60).drop("_bucket"),
        "validation": tagged.filter((F.col("_bucket") >= 60) & (F.col("_bucket") < 80)).drop("_bucket"),
        "test": tagged.filter(F.col("_bucket") >= 80).drop("_bucket"),
    }
