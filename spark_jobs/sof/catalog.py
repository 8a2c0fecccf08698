"""The views silver materializes: every ViewDefinition in include/views/ and in an
extra folder from configuration (local or abfss://), each becoming `silver/<name>`,
checked (FHIRPath, R4 elements, PHI policy) before any data is read."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache, partial

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from spark_jobs.codesets import include_path
from spark_jobs.lakehouse import PermanentJobError
from spark_jobs.sof import phi_policy
from spark_jobs.sof.compiler import ViewCompileError
from spark_jobs.sof.view import CompiledView, compile_view, view_rows

TABLE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
# Columns every view table carries beside the view's own (SilverTable's key and row key
# for versions, tombstones and the MERGE, and the silver provenance columns).
RESOURCE_KEY = "resource_key"
ROW_INDEX = "view_row_index"
ROW_ID = "view_row_id"
# getResourceKey() in silver is bronze's resource id: an entry of a transaction Bundle may
# have no `id`, and bronze keys it by its fullUrl.
BRONZE_RESOURCE_ID = "_bronze_resource_id"


@dataclass(frozen=True)
class SilverView:
    name: str
    source: str  # the file it came from, for error messages
    compiled: CompiledView
    reduced: frozenset[str] = frozenset()  # silver's own inputs that its transform hashes or reduces


# Silver's own views (include/silver_views/) are what its clinical transforms read. A
# column tagged silver-phi is an input the transform hashes or reduces as the tag's value
# says: exempt from the PHI policy here, and never stored as read (silver_normalize checks).
SILVER_PHI_TAG = "silver-phi"
SILVER_PHI_REDUCTIONS = {
    "hash": "HMAC-hashed",
    "age": "reduced to an age in whole years, capped",
    "zip3": "reduced to its first three digits, restricted ones replaced",
    "address-area": "reduced to city, state or country of the address (SPEC section 6)",
    "medication-reference": "a reference to a Medication, kept as written",
}


@lru_cache(maxsize=128)
def compiled_view(text: str) -> CompiledView:
    """A view file's text compiled, once per process: a job server or a test session
    compiles the same views for every silver run, and their Columns hold no session."""
    return compile_view(json.loads(text), resource_key=F.col(BRONZE_RESOURCE_ID))


def silver_source_view(name: str) -> SilverView:
    """One of silver's own views, include/silver_views/<name>.json, compiled and checked."""
    path = include_path("silver_views", f"{name}.json")
    text = path.read_text()
    view = json.loads(text)
    try:
        compiled = compiled_view(text)
        reduced = _reduced_columns(view["select"])
        phi_policy.check(compiled, exempt=frozenset(reduced))
    except ViewCompileError as exc:
        raise PermanentJobError(f"view {path}: {exc}") from None
    return SilverView(view["name"], str(path), compiled, frozenset(reduced))


def _reduced_columns(selects: list) -> set[str]:
    """Columns tagged silver-phi anywhere in a view's selects; an unknown reduction is an error."""
    found = set()
    for select in selects:
        for column in select.get("column", []):
            for tag in column.get("tag", []):
                if tag.get("name") != SILVER_PHI_TAG:
                    continue
                if tag.get("value") not in SILVER_PHI_REDUCTIONS:
                    raise ViewCompileError(
                        f"column {column['name']!r}: {SILVER_PHI_TAG} must be one of "
                        f"{sorted(SILVER_PHI_REDUCTIONS)}, got {tag.get('value')!r}"
                    )
                found.add(column["name"])
        found |= _reduced_columns(select.get("select", []) + select.get("unionAll", []))
    return found


def _definitions(spark: SparkSession, extra_folder: str | None) -> list[tuple[str, str]]:
    """(source, JSON text) of every view file, the repository's first."""
    files = sorted(include_path("views").glob("*.json"))
    found = [(str(path), path.read_text()) for path in files]
    if extra_folder:
        try:
            texts = spark.read.text(f"{extra_folder.rstrip('/')}/*.json", wholetext=True)
            rows = texts.select(F.input_file_name().alias("path"), "value").collect()  # a few small files
        except Exception as exc:  # noqa: BLE001 - Spark's AnalysisException: nothing matched
            if "PATH_NOT_FOUND" not in str(exc):
                raise
            rows = []
        found += sorted((row.path, row.value) for row in rows)
    return found


def load_views(spark: SparkSession, extra_folder: str | None, reserved: set[str]) -> list[SilverView]:
    """Every view, compiled and checked; a PermanentJobError naming the file and the
    problem when one cannot run (nothing is read or written then)."""
    views, names = [], {}
    for source, text in _definitions(spark, extra_folder):
        try:
            view = json.loads(text)
            compiled = compiled_view(text)
            phi_policy.check(compiled)
        except (json.JSONDecodeError, ViewCompileError) as exc:
            raise PermanentJobError(f"view {source}: {exc}") from None
        name = view.get("name")
        if not isinstance(name, str) or not TABLE_NAME.match(name):
            raise PermanentJobError(
                f"view {source}: 'name' must be a table name (lower case, digits, _), got {name!r}"
            )
        if name in reserved or name in names:
            raise PermanentJobError(
                f"view {source}: table name {name!r} is taken ({names.get(name, 'silver')})"
            )
        clash = {RESOURCE_KEY, ROW_INDEX, ROW_ID} & set(compiled.columns) | {
            c for c in compiled.columns if c.startswith("source_")
        }
        if clash:
            raise PermanentJobError(f"view {source}: column name(s) {sorted(clash)} are reserved for silver")
        names[name] = source
        views.append(SilverView(name, source, compiled))
    return views


BUNDLE_COLUMNS = ("ingestion_date", "source_file", "bundle_id")


def silver_view_rows(
    live: DataFrame,
    view: SilverView,
    provenance: list[Column],
    hash_id: Callable[[Column], Column],
    urn_map: DataFrame | None,
    mismatch: str | None = None,
) -> DataFrame:
    """A view's silver rows from bronze records (with resource_key and version_order):
    the view's columns (Patient keys resolved inside Bundles, then hashed), the
    resource key, a row id per row of a resource version, and the provenance every
    silver row carries (and `mismatch`: see view_rows)."""
    bundle = [F.col(c).alias(f"_bundle_{c}") for c in BUNDLE_COLUMNS]
    carried = live.select(
        F.col(RESOURCE_KEY),
        *provenance,
        *bundle,
        F.col("resource_id").alias(BRONZE_RESOURCE_ID),
        F.col("resource_json"),
    )
    keep = tuple(c for c in carried.columns if c != "resource_json")
    rows = view_rows(
        carried, view.compiled, keep=keep, position=ROW_INDEX, all_of_type=True, mismatch=mismatch
    )
    resolve = partial(_resolve_bundle_patient, urn_map) if urn_map is not None else None
    rows = phi_policy.hash_patient_keys(rows, view.compiled, hash_id, resolve)
    rows = rows.drop(BRONZE_RESOURCE_ID, *[f"_bundle_{c}" for c in BUNDLE_COLUMNS])
    return rows.withColumn(ROW_ID, F.concat_ws("#", F.col(RESOURCE_KEY), F.col(ROW_INDEX).cast("string")))


def _resolve_bundle_patient(urn_map: DataFrame, rows: DataFrame, column: str) -> DataFrame:
    """`column`'s `urn:uuid:` keys -> the id of the Patient entry with that fullUrl in
    the same Bundle (urn_map: ingestion_date, source_file, bundle_id, full_url -> patient_id)."""
    urn = F.broadcast(
        urn_map.select(
            *[F.col(c).alias(f"_urn_{c}") for c in BUNDLE_COLUMNS],
            F.col("full_url").alias("_urn_full_url"),
            F.col("patient_id").alias("_urn_patient_id"),
        )
    )
    same_bundle = (
        (F.col(column) == F.col("_urn_full_url"))
        & (F.col("_bundle_ingestion_date") == F.col("_urn_ingestion_date"))
        & (F.col("_bundle_source_file") == F.col("_urn_source_file"))
        & F.col("_bundle_bundle_id").eqNullSafe(F.col("_urn_bundle_id"))
    )
    resolved = F.when(F.col(column).startswith(phi_policy.URN_UUID), F.col("_urn_patient_id")).otherwise(
        F.col(column)
    )
    joined = rows.join(urn, same_bundle, "left").withColumn(column, resolved)
    return joined.drop(*[c for c in joined.columns if c.startswith("_urn_")])
