"""The PHI policy every governed view passes before it runs (include/fhir/phi_policy.json):
an allow-list by FHIR type and element path of what may leave bronze, and HMAC
hashing of the Patient keys a view outputs."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from spark_jobs.codesets import include_path
from spark_jobs.sof import r4
from spark_jobs.sof.compiler import Value, ViewCompileError
from spark_jobs.sof.view import CompiledView

# Primitive types that hold text people wrote.
FREE_TEXT_TYPES = frozenset({"string", "markdown"})


class PhiPolicyError(ViewCompileError):
    """A view whose output would carry PHI; the message names the column and the rule."""


@cache
def policy() -> dict:
    loaded = json.loads(include_path("fhir", "phi_policy.json").read_text())
    required = {
        "allowed_primitive_types",
        "allowed_text",
        "allowed_contained_types",
        "refused_types",
        "refused_paths",
    }
    missing = required - set(loaded)
    if missing:
        raise ValueError(f"include/fhir/phi_policy.json lacks {sorted(missing)}")
    return loaded


def refusal(value: Value) -> str | None:
    """Why `value` may not leave bronze, or None."""
    rules = policy()
    if value.patient_key:
        return "a Patient key in a collection: output one per row" if value.many else None
    if value.node is not None:
        return f"a whole {value.type}: select the elements it needs"
    contained = {step.split(":", 1)[1] for step in value.through if step.startswith("contained:")}
    for step in sorted(value.through):
        if step == "Resource" and contained and contained <= set(rules["allowed_contained_types"]):
            continue  # a contained resource of an allowed type: judged by its elements
        if step in rules["refused_types"]:
            return rules["refused_types"][step]
        if step in rules["refused_paths"]:
            return rules["refused_paths"][step]
    if any(step in rules["allowed_text"] for step in value.through):
        return None
    if value.type.startswith("System."):
        # Computed: booleans, numbers and literals pass; a string built from free text does not.
        free_text = sorted(FREE_TEXT_TYPES & value.through) if value.type == "System.String" else []
        return f"free text ({', '.join(free_text)}) outside the allowed text elements" if free_text else None
    if r4.primitive_system_type(value.type) is None or value.type in rules["allowed_primitive_types"]:
        return None
    return f"free text ({value.type}) outside the allowed text elements"


def check(compiled: CompiledView, exempt: frozenset[str] = frozenset()) -> None:
    """Refuse the view, before it reads data, when a column would carry PHI. `exempt`
    columns are silver's own inputs that its clinical transforms hash or reduce."""
    for name, values in compiled.values.items():
        if name in exempt:
            continue
        for value in values:
            reason = refusal(value)
            if reason:
                raise PhiPolicyError(f"column {name!r}: refused by the PHI policy: {reason}")


URN_UUID = "urn:uuid:"


def patient_key_columns(compiled: CompiledView) -> list[str]:
    return [name for name, values in compiled.values.items() if any(v.patient_key for v in values)]


def hash_patient_keys(
    rows: DataFrame,
    compiled: CompiledView,
    hash_id: Callable[[Column], Column],
    resolve_urn: Callable[[DataFrame, str], DataFrame] | None = None,
) -> DataFrame:
    """The view's rows with every Patient key column HMAC-hashed. A `urn:uuid:` key
    (a reference inside a Bundle) is first resolved by `resolve_urn`, else dropped."""
    keyed = patient_key_columns(compiled)
    for name in keyed:
        if resolve_urn is not None:
            rows = resolve_urn(rows, name)
        else:
            rows = rows.withColumn(name, F.when(~F.col(name).startswith(URN_UUID), F.col(name)))
    return rows.withColumns({name: hash_id(F.col(name)) for name in keyed}) if keyed else rows
