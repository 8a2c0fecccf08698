"""The one SparkSession builder used by every job and every test.

Defaults suit a laptop or CI box (local[2], UTC, few shuffle partitions, Delta
Lake enabled from the jars `make setup` put in `.local/jars/`). Anything the
caller already configured wins: a `spark-submit --conf k=v` (or `--master`,
`--jars`) is never overridden, so the same job runs unchanged on a Spark
cluster. On Databricks the runtime already provides Delta, so only the
session-level settings are applied there.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

from pyspark import SparkConf, SparkContext
from pyspark.sql import SparkSession

from fhir_contract import (
    DEFAULT_JARS_DIR,
    DRIVER_JAVA_OPTIONS,
    DRIVER_MEMORY,
    class_archive_option,
    delta_jars,
)

# Bronze writes Parquet row groups of about this size and silver reads in splits of it.
# A split cannot cut a row group, and with Parquet's 128 MB default a bronze file of
# Observations was one row group: silver read them in a few uneven tasks, so one core
# idled through the last one. Splits of this size make more tasks, which end within a
# short task of each other.
READ_SPLIT_BYTES = 16 * 2**20

# Settings that only make sense when we launch the JVM ourselves (local mode).
LOCAL_DEFAULTS: dict[str, str] = {
    "spark.master": "local[2]",
    "spark.driver.memory": DRIVER_MEMORY,
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
    # Two cores: a handful of partitions beats Spark's default 200 tasks per shuffle.
    "spark.sql.shuffle.partitions": "4",
    # Delta rebuilds table state with 50 tasks by default, which dominates small jobs.
    "spark.databricks.delta.snapshotPartitions": "2",
    # The per-commit checksum file costs a full state reconstruction per commit and is
    # only an optional consistency check.
    "spark.databricks.delta.writeChecksumFile.enabled": "false",
    # VACUUM lists a table's files with this many tasks (default 10,000): far too many
    # for two cores, however small the table.
    "spark.sql.sources.parallelPartitionDiscovery.parallelism": "8",
    "spark.ui.showConsoleProgress": "false",
    # Compiled query code is reused when a query comes again (a warm job server, a test
    # session); the default 100 classes are fewer than one batch run generates.
    "spark.sql.codegen.cache.maxEntries": "2000",
}

# Settings that are correct everywhere, cluster or laptop.
SESSION_DEFAULTS: dict[str, str] = {
    "spark.sql.session.timeZone": "UTC",
    # Storage account keys must not show in the Spark UI or event logs.
    "spark.redaction.regex": r"(?i)secret|password|token|access[.]key|account[.]key",
    "spark.sql.adaptive.enabled": "true",
    # MERGE schema evolution stays explicit: jobs declare their columns.
    "spark.databricks.delta.schema.autoMerge.enabled": "false",
    # MERGE clusters its output by partition value, as partitioned() does for writes.
    "spark.databricks.delta.merge.repartitionBeforeWrite.enabled": "true",
    # Timestamps as Parquet INT64 microseconds, not the legacy INT96 (Julian day +
    # nanoseconds, dictionary-encoded as 12-byte arrays): faster to write.
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    # PySpark otherwise records the Python call site on the JVM around every Column and
    # DataFrame call (several py4j round trips each), which made building the view
    # expressions most of a small silver run. Errors still name the failing expression.
    "spark.python.sql.dataFrameDebugging.enabled": "false",
}


def without_parquet_dictionary(columns: Iterable[str]) -> dict[str, str]:
    """Session settings that write these columns without a Parquet dictionary.

    For columns that hold a new value in nearly every row (raw JSON, content hashes,
    row ids): Parquet starts each row group's column with a dictionary, hashing every
    value into it, and only falls back to plain encoding once that dictionary passes
    1 MB, so their files come out the same size either way and the hashing is wasted
    work.
    """
    return {f"spark.hadoop.parquet.enable.dictionary#{column}": "false" for column in columns}


def _running_on_databricks() -> bool:
    return "DATABRICKS_RUNTIME_VERSION" in os.environ


def _conf_given_by_launcher() -> SparkConf:
    """What spark-submit (if it started us) already configured."""
    if "PYSPARK_GATEWAY_PORT" in os.environ:
        # Started by spark-submit: its JVM is up and holds every --conf as a
        # system property, which SparkConf() loads once connected to it.
        SparkContext._ensure_initialized()
        return SparkConf()
    return SparkConf(loadDefaults=False)


def build_spark_session(
    app_name: str,
    extra_conf: dict[str, str] | None = None,
) -> SparkSession:
    """Return the active SparkSession, or create one with the project defaults.

    `extra_conf` is for callers with a real need (tests turn the UI off);
    like the defaults, it yields to anything set through spark-submit.
    """
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    already_set = _conf_given_by_launcher()
    wanted: dict[str, str] = {}
    if not _running_on_databricks():
        wanted.update(LOCAL_DEFAULTS)
        wanted["spark.driver.extraJavaOptions"] = " ".join(
            filter(None, [DRIVER_JAVA_OPTIONS, class_archive_option()])
        )
        jars = delta_jars()
        if not jars and not already_set.contains("spark.jars"):
            raise RuntimeError(
                "Delta Lake jars not found in "
                f"{os.environ.get('FHIR_SPARK_JARS_DIR', DEFAULT_JARS_DIR)}. "
                "Run `make setup` (or pass --jars / set FHIR_SPARK_JARS_DIR)."
            )
        if jars:
            wanted["spark.jars"] = ",".join(jars)
    wanted.update(SESSION_DEFAULTS)
    wanted.update(extra_conf or {})

    builder = SparkSession.builder.appName(app_name)
    for key, value in wanted.items():
        if not already_set.contains(key):
            builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    configure_azure_storage(spark)
    return spark


def configure_azure_storage(spark: SparkSession, environ: dict[str, str] | None = None) -> None:
    """Credentials for abfs(s):// landing zones, from the environment (never the command line).

    Applied to the session's Hadoop configuration, which the executors receive with
    their tasks (see azure_storage_settings).
    """
    settings = azure_storage_settings(os.environ if environ is None else environ)
    if settings:
        hadoop = spark.sparkContext._jsc.hadoopConfiguration()
        for key, value in settings.items():
            hadoop.set(key, value)


# An emulator answers at once or not at all: ABFS's default 30 retries with backoff took
# about 10 minutes to report a bad endpoint.
EMULATOR_MAX_RETRIES = "2"


def azure_storage_settings(env: Mapping[str, str]) -> dict[str, str]:
    """The Hadoop settings for Azure storage that the environment asks for.

    FHIR_AZURE_STORAGE_ACCOUNT + FHIR_AZURE_STORAGE_KEY give shared-key access
    to <account>.dfs.core.windows.net. FHIR_AZURE_STORAGE_ENDPOINT (host:port)
    points ABFS at an emulator such as Azurite, which speaks only the Blob API
    over plain HTTP. Without these variables the cluster's own configuration
    (managed identity, Databricks secrets) applies.
    """
    account = env.get("FHIR_AZURE_STORAGE_ACCOUNT")
    if not account:
        return {}
    settings: dict[str, str] = {}
    host = f"{account}.dfs.core.windows.net"
    key = env.get("FHIR_AZURE_STORAGE_KEY")
    if key:
        settings[f"fs.azure.account.auth.type.{host}"] = "SharedKey"
        settings[f"fs.azure.account.key.{host}"] = key
    endpoint = env.get("FHIR_AZURE_STORAGE_ENDPOINT")
    if endpoint:
        settings.update(
            {
                "fs.azure.abfs.endpoint": endpoint,
                "fs.azure.always.use.https": "false",
                "fs.azure.account.hns.enabled": "false",
                "fs.azure.fns.account.service.type": "BLOB",
                # ABFS's default HTTP client insists on TLS, even for http:// endpoints.
                "fs.azure.networking.library": "JDK_HTTP_URL_CONNECTION",
                # abfss:// (the URIs production uses) through the plain-HTTP ABFS class: the
                # secure one forces TLS, which an emulator's HTTP port never answers. Every
                # FileSystem path (Delta, landing, summaries, on every executor) goes through it.
                "fs.abfss.impl": "org.apache.hadoop.fs.azurebfs.AzureBlobFileSystem",
                "fs.azure.io.retry.max.retries": EMULATOR_MAX_RETRIES,
            }
        )
    return settings
