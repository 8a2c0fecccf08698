"""Bronze: land one day's FHIR extract in Delta, every record exactly once.

    python -m spark_jobs.bronze_ingest --landing <root-uri> --lakehouse <root-uri> --run-date D

Reads `<landing>/daily_extract/<D>/`: NDJSON (`*.ndjson`), single resources or
Bundles (`*.json`), gzipped or not (`*.gz`). Writes
- `bronze/fhir_raw` (partitioned by resource_type, ingestion_date): one row per
  resource, with the exact raw JSON text, and one tombstone row per Bundle
  DELETE entry;
- `bronze/<type>_raw` for the types silver reads;
- `bronze/quarantine`: every record that cannot be ingested, with the reason
  and its raw text (or raw bytes, base64, when not UTF-8);
- `bronze/ingest_runs`: per-run counts (read = ingested + quarantined).

Idempotent per date: each table's `ingestion_date = D` slice is replaced as a
whole, and a rerun over an unchanged landing folder (same file names, sizes
and modification times) is a no-op unless `--force` is given.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from spark_jobs import codesets, fhir_json, fhir_schemas
from spark_jobs.lakehouse import (
    PermanentJobError,
    append,
    configure_logging,
    overwrite_slice,
    read_table,
    run_concurrently,
    run_job,
    table_exists,
    table_path,
)
from spark_jobs.session import READ_SPLIT_BYTES, build_spark_session, without_parquet_dictionary

log = logging.getLogger("fhir_lakehouse.bronze")


# Per-type raw tables (SPEC §4) and the resource type each one holds.
TYPED_RAW_TABLES = {
    "observation_raw": "Observation",
    "medicationstatement_raw": "MedicationStatement",
    "medicationrequest_raw": "MedicationRequest",
    "patient_raw": "Patient",
    "encounter_raw": "Encounter",
    "condition_raw": "Condition",
}

# Data skipping statistics only on the columns audits filter by: collecting them on
# the raw JSON text copies every record once more and never skips a file.
RAW_STATS_COLUMNS = ("resource_id", "version_id", "last_updated_ts", "ingested_at", "run_id", "ingest_mode")
QUARANTINE_STATS_COLUMNS = ("reason", "source_file", "line_number", "ingested_at", "run_id", "ingest_mode")
STATS_COLUMNS = {
    "fhir_raw": RAW_STATS_COLUMNS,
    "quarantine": QUARANTINE_STATS_COLUMNS,
    **{table: RAW_STATS_COLUMNS for table in TYPED_RAW_TABLES},
}

# Columns that hold a new value in nearly every row (session.without_parquet_dictionary).
UNIQUE_COLUMNS = ("resource_json", "raw_text", "raw_base64", "content_hash", "resource_id")

# How a record reached bronze: a daily batch load or the stream (stream_ingest).
BATCH, STREAM = "batch", "stream"

# Quarantine reasons decided here (read-level ones come from fhir_json).
MALFORMED_JSON = "malformed_json"
TRUNCATED_RECORD = "truncated_record"
NOT_AN_OBJECT = "not_an_object"
WRONG_TYPE = "wrong_type"
MISSING_RESOURCE_TYPE = "missing_resource_type"
UNKNOWN_RESOURCE_TYPE = "unknown_resource_type"
MISSING_ID = "missing_id"
INVALID_ID = "invalid_id"
INVALID_BUNDLE_ENTRY = "invalid_bundle_entry"
UNSUPPORTED_REQUEST = "unsupported_bundle_request"

FHIR_ID_PATTERN = rf"^{fhir_schemas.FHIR_ID}$"
# A reference or request URL naming one resource: [base/]Type/id[/_history/v]
RESOURCE_URL_PATTERN = rf"(?:^|/)([A-Z][A-Za-z]+)/({fhir_schemas.FHIR_ID})(?:/_history/[^/]+)?$"

DOCUMENT_SCHEMA = T.StructType(
    [
        T.StructField("source_file", T.StringType()),
        T.StructField("line_number", T.IntegerType()),
        T.StructField("text", T.StringType()),
        T.StructField("raw_base64", T.StringType()),
        T.StructField("read_error", T.StringType()),
        T.StructField("read_error_detail", T.StringType()),
    ]
)

ENVELOPE_SCHEMA = (
    "resourceType string, id string, meta struct<versionId string, lastUpdated string>, "
    "type string, timestamp string, _corrupt_record string"
)

BUNDLE_ENTRIES_TYPE = T.ArrayType(
    T.StructType(
        [
            T.StructField("entry_index", T.IntegerType()),
            T.StructField("full_url", T.StringType()),
            T.StructField("request_method", T.StringType()),
            T.StructField("request_url", T.StringType()),
            T.StructField("resource_text", T.StringType()),
            T.StructField("error", T.StringType()),
        ]
    )
)


class LandingError(PermanentJobError):
    """The landing folder cannot be ingested at all (missing, empty)."""


@dataclass(frozen=True)
class LandingFile:
    uri: str
    relative_path: str
    size: int
    modified_ms: int


# --- Reading -----------------------------------------------


WASB_URI = re.compile(r"^wasb(s?)://([^@/]+)@([^./]+)\.blob\.([^/]+)(/.*)?$")


def hadoop_uri(uri: str) -> str:
    """Hadoop 3.5 dropped the WASB driver: read wasb(s):// through ABFS on the same account."""
    match = WASB_URI.match(uri)
    if not match:
        return uri
    secure, container, account, suffix, path = match.groups()
    return f"abfs{secure}://{container}@{account}.dfs.{suffix}{path or ''}"


def landing_folder(landing: str, run_date: dt.date, prefix: str | None = None) -> str:
    """<landing>/daily_extract/<run-date>, or <landing>/<prefix> when a prefix is given."""
    relative = (prefix or f"daily_extract/{run_date.isoformat()}").strip("/")
    return f"{hadoop_uri(landing).rstrip('/')}/{relative}"


def list_landing_files(spark: SparkSession, folder: str) -> list[LandingFile]:
    """List data files under `folder` with Hadoop's FileSystem (local, abfss, wasbs)."""
    jvm = spark.sparkContext._jvm
    hadoop_path = jvm.org.apache.hadoop.fs.Path(folder)
    fs = hadoop_path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    if not fs.exists(hadoop_path):
        raise LandingError(
            f"Landing folder {folder} does not exist. Nothing was ingested; check --landing and "
            "--run-date (the Airflow sensor normally waits for this folder)."
        )
    root = fs.makeQualified(hadoop_path).toString().rstrip("/")
    files: list[LandingFile] = []
    iterator = fs.listFiles(hadoop_path, True)
    while iterator.hasNext():
        status = iterator.next()
        uri = status.getPath().toString()
        relative = uri[len(root) + 1 :] if uri.startswith(root + "/") else status.getPath().getName()
        # Hadoop convention: _SUCCESS, .crc and other hidden files are not data.
        if any(part.startswith((".", "_")) for part in relative.split("/")):
            continue
        files.append(LandingFile(uri, relative, status.getLen(), status.getModificationTime()))
    if not files:
        raise LandingError(f"Landing folder {folder} holds no data files. Nothing was ingested.")
    return sorted(files, key=lambda f: f.relative_path)


def landing_fingerprint(files: Iterable[LandingFile]) -> str:
    digest = hashlib.sha256()
    for f in sorted(files, key=lambda f: f.relative_path):
        digest.update(f"{f.relative_path}\t{f.size}\t{f.modified_ms}\n".encode())
    return digest.hexdigest()


def _relative_source(uri_column: str) -> Column:
    """File path from `daily_extract/` on: the landing root is deployment detail."""
    return F.regexp_replace(F.col(uri_column), r"^.*/(daily_extract/[^/]+/)", "$1").alias("source_file")


def read_documents(spark: SparkSession, files: list[LandingFile]) -> DataFrame:
    """All records of the landing files as DOCUMENT_SCHEMA rows (no JSON parsing yet).

    Plain NDJSON, the bulk of the volume, is read by Spark's splittable text
    reader; gzip and whole-file JSON go through `fhir_json.split_landing_file`,
    which reports truncated streams and undecodable bytes per record.
    """
    ndjson = [f.uri for f in files if f.relative_path.lower().endswith(".ndjson")]
    others = [f.uri for f in files if not f.relative_path.lower().endswith(".ndjson")]
    parts: list[DataFrame] = []
    if ndjson:
        lines = spark.read.text(ndjson).select("value", _relative_source("_metadata.file_path"))
        parts.append(lines_to_documents(lines))
    if others:
        binary = spark.read.format("binaryFile").load(others).select(_relative_source("path"), "content")
        documents = binary.rdd.flatMap(
            lambda row: fhir_json.split_landing_file(row.source_file, bytes(row.content))
        )
        parts.append(spark.createDataFrame(documents, DOCUMENT_SCHEMA))
    result = parts[0]
    for part in parts[1:]:
        result = result.unionByName(part)
    return result


# --- Pure transforms -----------------------------------------------


def lines_to_documents(lines: DataFrame) -> DataFrame:
    """Text lines (`value`, `source_file`) as DOCUMENT_SCHEMA rows: blank lines dropped,
    undecodable bytes kept in base64 with the non_utf8 reason. Shared by the batch
    NDJSON reader and the streaming sources."""
    valid = F.expr("is_valid_utf8(value)")
    return lines.filter(F.trim("value") != "").select(
        "source_file",
        F.lit(None).cast("int").alias("line_number"),
        F.when(valid, F.col("value")).alias("text"),
        F.when(~valid, F.base64(F.col("value").cast("binary"))).alias("raw_base64"),
        F.when(~valid, F.lit(fhir_json.NON_UTF8)).alias("read_error"),
        F.when(~valid, F.lit("invalid UTF-8 in line")).alias("read_error_detail"),
    )


def classified_records(documents: DataFrame) -> DataFrame:
    """Documents -> one record per resource or Bundle entry, with its identity or its
    quarantine reason. Row by row only, so it also applies to a streaming frame."""
    return classify(expand_bundles(documents), list(codesets.resource_types()))


def bronze_records(
    records: DataFrame, run_date: dt.date, run_id: str, ingested_at: dt.datetime, ingest_mode: str
) -> DataFrame:
    """Classified records with load metadata: what fhir_raw and quarantine are cut from."""
    return with_load_metadata(records, run_date, run_id, ingested_at).withColumn(
        "ingest_mode", F.lit(ingest_mode)
    )


def _first_char(text: Column) -> Column:
    return F.substring(F.ltrim(text), 1, 1)


def _unbalanced_braces(text: Column) -> Column:
    opened = F.length(text) - F.length(F.regexp_replace(text, r"\{", ""))
    closed = F.length(text) - F.length(F.regexp_replace(text, r"\}", ""))
    return opened > closed


def _names_a_non_string(key: str, text: Column) -> Column:
    """Whether the JSON text gives `key` a value that is not a string, at any depth."""
    # One pattern per key, not one alternation: a pattern that starts with a literal of
    # four or more characters is searched with Boyer-Moore, skipping ahead, where an
    # alternation is tried at every quote.
    return text.rlike(rf'"{key}"\s*:\s*[^"\s]')


def with_envelope(records: DataFrame, text_column: str = "text") -> DataFrame:
    """Parse each record's envelope and name what is wrong with it, if anything.

    Adds `env` (resourceType, id, meta, Bundle type/timestamp) and `reason` /
    `reason_detail` (null for a good record). Records that already carry a
    `read_error` keep it as their reason.
    """
    text = F.col(text_column)
    env = F.from_json(
        text,
        ENVELOPE_SCHEMA,
        {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": "_corrupt_record"},
    )
    parsed = records.withColumn("env", env)
    corrupt = F.col("env._corrupt_record").isNotNull() | F.col("env").isNull()
    reason = (
        F.when(F.col("read_error").isNotNull(), F.col("read_error"))
        .when(
            corrupt & (_first_char(text) != "{") & F.try_parse_json(text).isNotNull(),
            F.lit(NOT_AN_OBJECT),
        )
        .when(corrupt & _unbalanced_braces(text), F.lit(TRUNCATED_RECORD))
        .when(corrupt, F.lit(MALFORMED_JSON))
        .when(_names_a_non_string("id", text) | _names_a_non_string("resourceType", text), F.lit(WRONG_TYPE))
        .when(F.col("env.resourceType").isNull(), F.lit(MISSING_RESOURCE_TYPE))
    )
    named = F.col("reason")
    detail = (
        F.when(F.col("read_error").isNotNull(), F.col("read_error_detail"))
        .when(named == NOT_AN_OBJECT, F.lit("a FHIR record must be a JSON object"))
        .when(named == TRUNCATED_RECORD, F.lit("JSON ends before its closing brace"))
        .when(named == MALFORMED_JSON, F.lit("not parseable as JSON"))
        .when(named == WRONG_TYPE, F.lit("resourceType and id must be JSON strings"))
        .when(named == MISSING_RESOURCE_TYPE, F.lit("no resourceType"))
    )
    return parsed.withColumn("reason", reason).withColumn("reason_detail", detail)


@F.udf(returnType=BUNDLE_ENTRIES_TYPE)
def _split_bundle_udf(text):
    try:
        return [tuple(entry) for entry in fhir_json.split_bundle(text)]
    except (ValueError, IndexError) as exc:
        return [(0, None, None, None, None, f"Bundle could not be split: {exc}")]


def expand_bundles(documents: DataFrame) -> DataFrame:
    """Parse each document's envelope and replace each good Bundle by its entries
    (one record per entry).

    Non-bundle documents pass through with null bundle columns. An entry's
    record text is its resource's exact JSON text.
    """
    is_bundle = F.col("reason").isNull() & (F.col("env.resourceType") == "Bundle")
    # The entries branch reads the documents a second time. Only a text holding
    # "Bundle", or a \u escape that could spell it, can be a Bundle: a byte search
    # spares that branch the JSON parse of every other record.
    text = F.col("text")
    may_be_bundle = text.contains("Bundle") | text.contains("\\u")
    bundle_columns = {
        "bundle_id": F.lit(None).cast("string"),
        "bundle_type": F.lit(None).cast("string"),
        "bundle_timestamp": F.lit(None).cast("string"),
        "bundle_entry_index": F.lit(None).cast("int"),
        "bundle_entry_full_url": F.lit(None).cast("string"),
        "request_method": F.lit(None).cast("string"),
        "request_url": F.lit(None).cast("string"),
        "entry_error": F.lit(None).cast("string"),
    }
    singles = with_envelope(documents).filter(~is_bundle | is_bundle.isNull()).withColumns(bundle_columns)
    entries = (
        with_envelope(documents.filter(may_be_bundle))
        .filter(is_bundle)
        .select(
            "source_file",
            "line_number",
            F.col("env.id").alias("bundle_id"),
            F.col("env.type").alias("bundle_type"),
            F.coalesce("env.timestamp", "env.meta.lastUpdated").alias("bundle_timestamp"),
            F.explode(_split_bundle_udf("text")).alias("entry"),
        )
        .select(
            "source_file",
            "line_number",
            F.col("entry.resource_text").alias("text"),
            F.lit(None).cast("string").alias("raw_base64"),
            F.lit(None).cast("string").alias("read_error"),
            F.lit(None).cast("string").alias("read_error_detail"),
            "bundle_id",
            "bundle_type",
            "bundle_timestamp",
            F.col("entry.entry_index").alias("bundle_entry_index"),
            F.col("entry.full_url").alias("bundle_entry_full_url"),
            F.upper("entry.request_method").alias("request_method"),
            F.col("entry.request_url").alias("request_url"),
            F.col("entry.error").alias("entry_error"),
        )
    )
    # Entries without a resource (DELETE, GET) have no JSON to parse.
    parsed_entries = with_envelope(
        entries.withColumn("text_or_empty", F.coalesce("text", F.lit("{}"))), "text_or_empty"
    ).drop("text_or_empty")
    return singles.unionByName(parsed_entries)


def classify(records: DataFrame, resource_types: list[str]) -> DataFrame:
    """Decide, for every record, its resource identity or its quarantine reason.

    Adds resource_type, resource_id, is_delete and final `reason`/`reason_detail`.
    """
    method = F.col("request_method")
    url_type = F.regexp_extract("request_url", RESOURCE_URL_PATTERN, 1)
    url_id = F.regexp_extract("request_url", RESOURCE_URL_PATTERN, 2)
    full_url = F.col("bundle_entry_full_url")
    # A resource posted without an id takes the id its fullUrl gives it
    # (urn:uuid:<uuid> or <base>/<Type>/<id>), as a server would assign one.
    id_from_full_url = F.coalesce(
        F.regexp_extract(full_url, rf"^urn:uuid:({fhir_schemas.FHIR_ID})$", 1),
        F.lit(""),
    )
    id_from_full_url = F.when(id_from_full_url != "", id_from_full_url).otherwise(
        F.nullif(F.regexp_extract(full_url, RESOURCE_URL_PATTERN, 2), F.lit(""))
    )
    is_delete = F.coalesce((method == "DELETE") & F.col("env.resourceType").isNull(), F.lit(False))
    in_bundle = F.col("bundle_id").isNotNull() | F.col("bundle_entry_index").isNotNull()
    conditional = F.coalesce(F.col("request_url").contains("?"), F.lit(False))
    operation = F.coalesce(F.col("request_url").contains("$"), F.lit(False))
    # Identity first, as columns, so the reason below refers to them instead of
    # repeating their expressions (which would bloat the generated code).
    staged = (
        records.withColumnRenamed("reason", "_parse_reason")
        .withColumnRenamed("reason_detail", "_parse_detail")
        .withColumn("is_delete", is_delete)
        .withColumn(
            "resource_type",
            F.when(F.col("is_delete"), F.nullif(url_type, F.lit(""))).otherwise(F.col("env.resourceType")),
        )
        .withColumn(
            "resource_id",
            F.when(F.col("is_delete"), F.nullif(url_id, F.lit(""))).otherwise(
                F.coalesce(F.col("env.id"), id_from_full_url)
            ),
        )
    )
    deleting, resource_type, resource_id = (
        F.col("is_delete"),
        F.col("resource_type"),
        F.col("resource_id"),
    )
    reason = (
        F.when(F.col("entry_error").isNotNull(), F.lit(INVALID_BUNDLE_ENTRY))
        .when(in_bundle & method.isin("GET", "HEAD", "PATCH"), F.lit(UNSUPPORTED_REQUEST))
        .when(in_bundle & (method == "POST") & operation, F.lit(UNSUPPORTED_REQUEST))
        .when(in_bundle & method.isin("PUT", "DELETE") & conditional, F.lit(UNSUPPORTED_REQUEST))
        .when(deleting & resource_id.isNull(), F.lit(UNSUPPORTED_REQUEST))
        .when(in_bundle & F.col("text").isNull() & ~deleting, F.lit(INVALID_BUNDLE_ENTRY))
        .when(~deleting & F.col("_parse_reason").isNotNull(), F.col("_parse_reason"))
        .when(resource_type.isNull(), F.lit(MISSING_RESOURCE_TYPE))
        .when(~resource_type.isin(resource_types), F.lit(UNKNOWN_RESOURCE_TYPE))
        .when(resource_id.isNull() | (resource_id == ""), F.lit(MISSING_ID))
        .when(~resource_id.rlike(FHIR_ID_PATTERN), F.lit(INVALID_ID))
    )
    final_reason = F.col("reason")
    detail = (
        F.when(F.col("entry_error").isNotNull(), F.col("entry_error"))
        .when(
            final_reason == UNSUPPORTED_REQUEST,
            F.concat_ws(" ", F.lit("bundle request not applied:"), method, F.col("request_url")),
        )
        .when(final_reason == INVALID_BUNDLE_ENTRY, F.lit("bundle entry has no resource"))
        .when(final_reason == F.col("_parse_reason"), F.col("_parse_detail"))
        .when(final_reason == MISSING_RESOURCE_TYPE, F.lit("no resourceType"))
        .when(
            final_reason == UNKNOWN_RESOURCE_TYPE,
            F.concat(F.lit("not an R4 resource type: "), resource_type),
        )
        .when(final_reason == MISSING_ID, F.lit("resource has no id"))
        .when(final_reason == INVALID_ID, F.lit("id does not match [A-Za-z0-9-.]{1,64}"))
    )
    return (
        staged.withColumn("reason", reason)
        .withColumn("reason_detail", detail)
        .drop("_parse_reason", "_parse_detail")
    )


def with_load_metadata(
    records: DataFrame, run_date: dt.date, run_id: str, ingested_at: dt.datetime
) -> DataFrame:
    return (
        records.withColumn("ingestion_date", F.lit(run_date))
        .withColumn("ingested_at", F.lit(ingested_at).cast("timestamp"))
        .withColumn("run_id", F.lit(run_id))
        .withColumn(
            "content_hash",
            F.sha2(
                F.coalesce(
                    F.col("text"),
                    F.col("raw_base64"),
                    F.concat_ws(" ", F.col("request_method"), F.col("request_url")),
                ),
                256,
            ),
        )
    )


def to_fhir_raw(records: DataFrame) -> DataFrame:
    good = records.filter(F.col("reason").isNull())
    return good.select(
        "resource_type",
        "resource_id",
        F.col("env.meta.versionId").alias("version_id"),
        F.col("env.meta.lastUpdated").alias("last_updated"),
        F.try_to_timestamp(F.col("env.meta.lastUpdated")).alias("last_updated_ts"),
        F.when(~F.col("is_delete"), F.col("text")).alias("resource_json"),
        "is_delete",
        "request_method",
        "source_file",
        "line_number",
        "bundle_id",
        "bundle_type",
        "bundle_timestamp",
        "bundle_entry_index",
        "bundle_entry_full_url",
        "content_hash",
        "ingestion_date",
        "ingested_at",
        "run_id",
        "ingest_mode",
    )


def bronze_tables(records: DataFrame) -> dict[str, tuple[DataFrame, list[str]]]:
    """The bronze tables bronze_records are cut into, except ingest_runs:
    name -> (rows, partition columns)."""
    fhir_raw = to_fhir_raw(records)
    tables = {
        "fhir_raw": (fhir_raw, ["resource_type", "ingestion_date"]),
        "quarantine": (to_quarantine(records), ["ingestion_date"]),
    }
    for table, resource_type in TYPED_RAW_TABLES.items():
        typed = fhir_raw.filter(F.col("resource_type") == resource_type).drop("resource_type")
        tables[table] = (typed, ["ingestion_date"])
    return tables


def to_quarantine(records: DataFrame) -> DataFrame:
    bad = records.filter(F.col("reason").isNotNull())
    return bad.select(
        "reason",
        "reason_detail",
        "source_file",
        "line_number",
        "bundle_id",
        "bundle_entry_index",
        F.coalesce(F.col("text"), F.concat_ws(" ", F.col("request_method"), F.col("request_url"))).alias(
            "raw_text"
        ),
        "raw_base64",
        "content_hash",
        "ingestion_date",
        "ingested_at",
        "run_id",
        "ingest_mode",
    )


# --- Job -----------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bronze_ingest", description=__doc__.split("\n")[0])
    parser.add_argument("--landing", required=True, help="landing root URI (local path, abfss://, wasbs://)")
    parser.add_argument("--lakehouse", required=True, help="lakehouse root URI")
    parser.add_argument("--run-date", required=True, type=dt.date.fromisoformat, help="YYYY-MM-DD")
    parser.add_argument("--run-id", default=None, help="orchestrator run id (default: manual__<now>)")
    parser.add_argument(
        "--landing-prefix",
        default=None,
        help="read <landing>/<prefix> instead of <landing>/daily_extract/<run-date> (late or moved extracts)",
    )
    parser.add_argument(
        "--force", action="store_true", help="re-ingest even if the landing folder is unchanged"
    )
    return parser.parse_args(argv)


def _previous_run_fingerprint(spark: SparkSession, runs_path: str, run_date: dt.date) -> str | None:
    if not table_exists(spark, runs_path):
        return None
    last = (
        read_table(spark, runs_path)
        .filter((F.col("run_date") == F.lit(run_date)) & (F.col("status") == "ingested"))
        .orderBy(F.col("finished_at").desc())
        .select("landing_fingerprint")
        .first()
    )
    return last.landing_fingerprint if last else None


def run(spark: SparkSession, args: argparse.Namespace) -> dict:
    started = utc_now()
    run_id = args.run_id or f"manual__{started.isoformat(timespec='seconds')}"
    folder = landing_folder(args.landing, args.run_date, args.landing_prefix)
    files = list_landing_files(spark, folder)
    fingerprint = landing_fingerprint(files)
    paths = {
        name: table_path(args.lakehouse, "bronze", name)
        for name in ["fhir_raw", "quarantine", "ingest_runs", *TYPED_RAW_TABLES]
    }
    log.info("Landing %s: %d files, %d bytes", folder, len(files), sum(f.size for f in files))

    if (
        not args.force
        and _previous_run_fingerprint(spark, paths["ingest_runs"], args.run_date) == fingerprint
    ):
        log.info(
            "Landing folder unchanged since the last successful ingest of %s: nothing to do",
            args.run_date,
        )
        counts = {"status": "unchanged", "run_date": args.run_date.isoformat()}
        _append_run_log(
            spark,
            paths["ingest_runs"],
            args,
            run_id,
            started,
            fingerprint,
            files,
            None,
            "unchanged",
        )
        return counts

    records = bronze_records(
        classified_records(read_documents(spark, files)), args.run_date, run_id, started, BATCH
    ).persist()
    try:
        records_read = records.count()
        # The batch load of a date owns that date's batch rows; streamed rows stay.
        slice_condition = f"ingestion_date = '{args.run_date.isoformat()}' AND ingest_mode = '{BATCH}'"
        # Every table is cut from the cached records, all at once. Bulk exports land
        # one resource type per file, so the cached rows are already grouped by type:
        # each task writes its rows where they are, without a shuffle.
        run_concurrently(
            {
                table: partial(
                    overwrite_slice,
                    rows,
                    paths[table],
                    slice_condition,
                    partition_by,
                    rebalance=False,
                    stats_columns=STATS_COLUMNS[table],
                )
                for table, (rows, partition_by) in bronze_tables(records).items()
            }
        )
    finally:
        records.unpersist()

    counts = _counts(spark, paths, args.run_date)
    if counts["read"] != records_read:
        raise RuntimeError(
            f"Bronze counts do not reconcile for {args.run_date}: read {records_read} records but "
            f"the tables hold {counts['ingested']} ingested + {counts['quarantined']} quarantined"
        )
    _append_run_log(
        spark, paths["ingest_runs"], args, run_id, started, fingerprint, files, counts, "ingested"
    )
    log.info(
        "Bronze %s: read %d = ingested %d + quarantined %d; by type %s; quarantine by reason %s",
        args.run_date,
        counts["read"],
        counts["ingested"],
        counts["quarantined"],
        counts["ingested_by_type"],
        counts["quarantined_by_reason"],
    )
    return counts


def _counts(spark: SparkSession, paths: dict[str, str], run_date: dt.date) -> dict:
    today = (F.col("ingestion_date") == F.lit(run_date)) & (F.col("ingest_mode") == BATCH)
    by_type = {
        r.resource_type: r["count"]
        for r in read_table(spark, paths["fhir_raw"]).filter(today).groupBy("resource_type").count().collect()
    }
    by_reason = {
        r.reason: r["count"]
        for r in read_table(spark, paths["quarantine"]).filter(today).groupBy("reason").count().collect()
    }
    ingested, quarantined = sum(by_type.values()), sum(by_reason.values())
    return {
        "status": "ingested",
        "run_date": run_date.isoformat(),
        "read": ingested + quarantined,
        "ingested": ingested,
        "quarantined": quarantined,
        "ingested_by_type": dict(sorted(by_type.items())),
        "quarantined_by_reason": dict(sorted(by_reason.items())),
    }


RUN_LOG_SCHEMA = T.StructType(
    [
        T.StructField("run_date", T.DateType()),
        T.StructField("run_id", T.StringType()),
        T.StructField("status", T.StringType()),
        T.StructField("started_at", T.TimestampType()),
        T.StructField("finished_at", T.TimestampType()),
        T.StructField("landing_fingerprint", T.StringType()),
        T.StructField("files", T.IntegerType()),
        T.StructField("bytes", T.LongType()),
        T.StructField("records_read", T.LongType()),
        T.StructField("ingested", T.LongType()),
        T.StructField("quarantined", T.LongType()),
        T.StructField("ingested_by_type", T.MapType(T.StringType(), T.LongType())),
        T.StructField("quarantined_by_reason", T.MapType(T.StringType(), T.LongType())),
    ]
)


@dataclass(frozen=True)
class RunLogRecord:
    """One row of bronze/ingest_runs (RUN_LOG_SCHEMA), from a batch run or a stream's
    micro-batch."""

    run_date: dt.date
    run_id: str
    status: str  # ingested | unchanged (batch), streamed (stream)
    started_at: dt.datetime
    finished_at: dt.datetime
    landing_fingerprint: str | None  # a stream's: its query name
    files: int
    bytes: int
    records_read: int | None = None
    ingested: int | None = None
    quarantined: int | None = None
    ingested_by_type: dict[str, int] | None = None
    quarantined_by_reason: dict[str, int] | None = None

    def frame(self, spark: SparkSession) -> DataFrame:
        return spark.createDataFrame(
            [tuple(getattr(self, f.name) for f in RUN_LOG_SCHEMA.fields)], RUN_LOG_SCHEMA
        )


def utc_now() -> dt.datetime:
    """Now, as the naive UTC timestamp the tables hold."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _append_run_log(spark, path, args, run_id, started, fingerprint, files, counts, status) -> None:
    counts = counts or {}
    record = RunLogRecord(
        run_date=args.run_date,
        run_id=run_id,
        status=status,
        started_at=started,
        finished_at=utc_now(),
        landing_fingerprint=fingerprint,
        files=len(files),
        bytes=sum(f.size for f in files),
        records_read=counts.get("read"),
        ingested=counts.get("ingested"),
        quarantined=counts.get("quarantined"),
        ingested_by_type=counts.get("ingested_by_type"),
        quarantined_by_reason=counts.get("quarantined_by_reason"),
    )
    append(record.frame(spark), path)


# Session settings of the bronze job (the job server applies them to the job's session).
SESSION_CONF = {
    # A bronze write task holds the rows of a type or a few (see run()): with a
    # writer open per partition value it skips sorting its rows by value first.
    "spark.sql.maxConcurrentOutputFileWriters": "8",
    # The cached records are mostly distinct JSON texts, which the cache's
    # dictionary and run-length encodings cannot shrink; trying them only slows
    # the cache fill.
    "spark.sql.inMemoryColumnarStorage.compressed": "false",
    # Row groups silver's reads can split at (session.READ_SPLIT_BYTES).
    "spark.hadoop.parquet.block.size": str(READ_SPLIT_BYTES),
    **without_parquet_dictionary(UNIQUE_COLUMNS),
}


def main(argv: list[str] | None = None, spark: SparkSession | None = None) -> dict:
    configure_logging()
    args = parse_args(argv)
    spark = spark or build_spark_session("fhir-bronze-ingest", SESSION_CONF)
    return run(spark, args)


if __name__ == "__main__":
    run_job(main)
