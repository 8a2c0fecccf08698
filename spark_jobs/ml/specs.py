"""The risk models' declarations, include/ml/models.json, checked when loaded: each
model's name, MLflow use_case, gold source table, label (labels.LABELS) and its exact,
ordered feature list. A gold column is a model input only when its model lists it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from pyspark.sql import DataFrame
from pyspark.sql import types as T

from spark_jobs.codesets import include_path
from spark_jobs.lakehouse import PermanentJobError
from spark_jobs.ml.labels import LABELS

FILE_KEYS = frozenset({"description", "models"})
MODEL_KEYS = frozenset({"name", "use_case", "source_table", "label", "features"})
NUMERIC = (T.IntegerType, T.LongType, T.DoubleType, T.FloatType, T.BooleanType, T.DecimalType)


class ModelSpecError(PermanentJobError):
    """include/ml/models.json is wrong, or gold lacks a feature it lists."""


@dataclass(frozen=True)
class ModelSpec:
    name: str
    use_case: str
    source_table: str
    label: str
    features: tuple[str, ...]


def _unknown_keys(where: str, found: dict, known: frozenset[str]) -> None:
    unknown = sorted(set(found) - known)
    if unknown:
        raise ModelSpecError(f"{where}: unknown key(s) {unknown}; expected {sorted(known)}")


def _model_spec(where: str, model: dict) -> ModelSpec:
    if not isinstance(model, dict):
        raise ModelSpecError(f"{where}: a model is an object with {sorted(MODEL_KEYS)}")
    _unknown_keys(where, model, MODEL_KEYS)
    missing = sorted(MODEL_KEYS - set(model))
    if missing:
        raise ModelSpecError(f"{where}: missing key(s) {missing}")
    label = LABELS.get(model["label"])
    if label is None:
        raise ModelSpecError(f"{where}: unknown label {model['label']!r}; known: {sorted(LABELS)}")
    if model["source_table"] != label.source_table:
        raise ModelSpecError(
            f"{where}: label {label.name} labels rows of {label.source_table}, not {model['source_table']}"
        )
    features = model["features"]
    if not features or not all(isinstance(f, str) and f for f in features):
        raise ModelSpecError(f"{where}: features must be a non-empty list of column names")
    repeated = sorted({f for f in features if features.count(f) > 1})
    if repeated:
        raise ModelSpecError(f"{where}: features listed twice: {repeated}")
    leaking = [f for f in features if f in label.defining_columns]
    if leaking:
        raise ModelSpecError(f"{where}: {leaking} define label {label.name} and cannot be features")
    return ModelSpec(model["name"], model["use_case"], model["source_table"], label.name, tuple(features))


def parse_model_specs(document: dict, source: str = "models.json") -> dict[str, ModelSpec]:
    """The models of a parsed models.json by name, in file order; ModelSpecError names
    the first thing wrong."""
    _unknown_keys(source, document, FILE_KEYS)
    specs: dict[str, ModelSpec] = {}
    for i, model in enumerate(document.get("models") or []):
        spec = _model_spec(f"{source}: models[{i}]", model)
        if spec.name in specs:
            raise ModelSpecError(f"{source}: model {spec.name} is declared twice")
        specs[spec.name] = spec
    if not specs:
        raise ModelSpecError(f"{source}: declares no model")
    return specs


@cache
def model_specs(path: Path | None = None) -> dict[str, ModelSpec]:
    """include/ml/models.json (or `path`), checked."""
    path = path or include_path("ml", "models.json")
    return parse_model_specs(json.loads(path.read_text()), str(path))


def check_features(spec: ModelSpec, frame: DataFrame) -> None:
    """Every feature of `spec` is a numeric (or boolean) column of `frame`, rows of its gold
    source table; else ModelSpecError naming the features that are not."""
    types = {field.name: field.dataType for field in frame.schema.fields}
    missing = [f for f in spec.features if f not in types]
    if missing:
        raise ModelSpecError(
            f"{spec.name}: feature(s) missing from gold {spec.source_table}: {', '.join(missing)} "
            "(include/ml/models.json)"
        )
    not_numeric = [
        f"{f} ({types[f].simpleString()})" for f in spec.features if not isinstance(types[f], NUMERIC)
    ]
    if not_numeric:
        raise ModelSpecError(
            f"{spec.name}: feature(s) of gold {spec.source_table} that are not numbers: "
            + ", ".join(not_numeric)
        )
