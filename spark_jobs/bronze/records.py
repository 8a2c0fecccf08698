"""Bronze records: landing documents parsed just enough to know each record's
identity (type, id, version) or its quarantine reason. Row by row only, so the
batch and the stream share them."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from spark_jobs import codesets, fhir_json, fhir_schemas

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
