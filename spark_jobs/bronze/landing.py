"""The landing zone: a run day's folder, its files, their fingerprint, and their
records read as documents (not yet parsed)."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from spark_jobs import fhir_json, lineage
from spark_jobs.bronze.records import DOCUMENT_SCHEMA, lines_to_documents
from spark_jobs.lakehouse import PermanentJobError


class LandingError(PermanentJobError):
    """The landing folder cannot be ingested at all (missing, empty)."""


@dataclass(frozen=True)
class LandingFile:
    uri: str
    relative_path: str
    size: int
    modified_ms: int


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
    lineage.read(folder)
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
