"""The Spark session builder: Delta works offline, and spark-submit settings win."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow.parquet as pq
from delta.tables import DeltaTable
from pyspark.testing import assertDataFrameEqual

from fhir_contract import CLASS_ARCHIVE, JVM_OPTIONS, class_archive_option, delta_jars
from spark_jobs.session import azure_storage_settings, without_parquet_dictionary


def test_session_has_project_defaults(spark):
    conf = spark.sparkContext.getConf()
    assert conf.get("spark.master") == "local[2]"
    assert spark.conf.get("spark.sql.session.timeZone") == "UTC"
    assert spark.conf.get("spark.sql.shuffle.partitions") == "4"
    assert "DeltaSparkSessionExtension" in conf.get("spark.sql.extensions")
    runtime = spark.sparkContext._jvm.java.lang.management.ManagementFactory.getRuntimeMXBean()
    assert set(JVM_OPTIONS.split()) <= set(runtime.getInputArguments())


def test_delta_jars_are_local_files_so_startup_needs_no_network(spark):
    conf = spark.sparkContext.getConf()
    # No Maven coordinates to resolve at startup: only jar files already on disk.
    assert not conf.contains("spark.jars.packages")
    jars = conf.get("spark.jars").split(",")
    assert jars == delta_jars()
    names = [Path(j).name for j in jars]
    assert any(n.startswith("delta-spark_") for n in names), names
    assert any(n.startswith("delta-storage-") for n in names), names
    assert all(Path(j).is_file() for j in jars)


def test_delta_write_merge_and_time_travel(spark, tmp_path):
    path = str(tmp_path / "patients")
    v0 = spark.createDataFrame([("p1", 1), ("p2", 2)], "id string, visits int")
    v0.write.format("delta").save(path)

    updates = spark.createDataFrame([("p2", 5), ("p3", 1)], "id string, visits int")
    (
        DeltaTable.forPath(spark, path)
        .alias("t")
        .merge(updates.alias("s"), "t.id = s.id")
        .whenMatchedUpdateAll()
        .whenNotMatchedInsertAll()
        .execute()
    )

    current = spark.read.format("delta").load(path)
    assertDataFrameEqual(
        current,
        spark.createDataFrame([("p1", 1), ("p2", 5), ("p3", 1)], "id string, visits int"),
    )
    first = spark.read.format("delta").option("versionAsOf", 0).load(path)
    assertDataFrameEqual(first, v0)
    history = DeltaTable.forPath(spark, path).history().select("version", "operation")
    assert [(r.version, r.operation) for r in history.orderBy("version").collect()] == [
        (0, "WRITE"),
        (1, "MERGE"),
    ]


def test_columns_named_are_written_without_a_parquet_dictionary(spark, tmp_path):
    settings = without_parquet_dictionary(["unique"])
    for key, value in settings.items():
        spark.conf.set(key, value)
    try:
        frame = spark.range(1000).selectExpr(
            "cast(id as string) as unique", "cast(id % 3 as string) as repeated"
        )
        frame.coalesce(1).write.parquet(str(tmp_path / "out"))
    finally:
        for key in settings:
            spark.conf.unset(key)
    (written,) = (tmp_path / "out").glob("*.parquet")
    row_group = pq.ParquetFile(written).metadata.row_group(0)
    encodings = {row_group.column(i).path_in_schema: row_group.column(i).encodings for i in range(2)}
    assert "PLAIN_DICTIONARY" not in encodings["unique"]
    assert "PLAIN_DICTIONARY" in encodings["repeated"]


def test_spark_submit_conf_overrides_the_defaults(tmp_path):
    """A job started by spark-submit keeps the launcher's --conf, not our defaults."""
    script = tmp_path / "print_conf.py"
    table = str(tmp_path / "t")
    script.write_text(
        textwrap.dedent(
            f"""
            from spark_jobs.session import build_spark_session
            spark = build_spark_session("conf-probe")
            print("PARTITIONS=" + spark.conf.get("spark.sql.shuffle.partitions"))
            print("TZ=" + spark.conf.get("spark.sql.session.timeZone"))
            spark.range(3).write.format("delta").save({table!r})
            print("ROWS=" + str(spark.read.format("delta").load({table!r}).count()))
            spark.stop()
            """
        )
    )
    result = subprocess.run(
        [
            "spark-submit",
            "--master",
            "local[1]",
            "--conf",
            "spark.sql.shuffle.partitions=7",
            "--conf",
            "spark.ui.enabled=false",
            "--jars",
            ",".join(delta_jars()),
            str(script),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYSPARK_PYTHON": sys.executable},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = set(result.stdout.split())
    assert "PARTITIONS=7" in lines
    assert "TZ=UTC" in lines
    assert "ROWS=3" in lines


def test_class_archive_option_only_when_the_archive_exists(tmp_path):
    assert class_archive_option(tmp_path / "missing.jsa") is None
    archive = tmp_path / "spark classes.jsa"
    archive.write_bytes(b"")
    assert class_archive_option(archive) == f"-XX:SharedArchiveFile='{archive}'"


def test_drivers_map_the_class_archive_setup_recorded(tmp_path):
    """Both ways a driver starts here (pyspark launching its JVM, as the bench and
    tests do, and spark-submit, as Airflow does) can map the archive. -Xshare:on makes
    a JVM that cannot (archive from another JDK or other jars) fail instead of
    silently starting without it."""
    assert CLASS_ARCHIVE.is_file(), "`make setup` records .local/spark-classes.jsa"
    options = f"{JVM_OPTIONS} {class_archive_option()} -Xshare:on"
    probe = textwrap.dedent(
        f"""
        import sys
        from spark_jobs.session import build_spark_session
        spark = build_spark_session("class-archive-probe", {{
            "spark.ui.enabled": "false", "spark.driver.extraJavaOptions": {options!r}}})
        runtime = spark.sparkContext._jvm.java.lang.management.ManagementFactory.getRuntimeMXBean()
        print("ARGS=" + "|".join(runtime.getInputArguments()))
        print("ROWS=" + str(spark.range(5).count()))
        spark.stop()
        """
    )
    script = tmp_path / "probe.py"
    script.write_text(probe)
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable}
    launches = {
        "pyspark": [sys.executable, str(script)],
        "spark-submit": [
            "spark-submit",
            "--master",
            "local[1]",
            "--conf",
            f"spark.driver.extraJavaOptions={options}",
            "--jars",
            ",".join(delta_jars()),
            str(script),
        ],
    }
    for name, command in launches.items():
        result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
        assert result.returncode == 0, f"{name}: {result.stderr[-3000:]}"
        lines = result.stdout.split("\n")
        assert "ROWS=5" in lines, name
        (args,) = [line for line in lines if line.startswith("ARGS=")]
        assert f"-XX:SharedArchiveFile={CLASS_ARCHIVE}" in args.split("|"), name
        assert "-Xshare:on" in args.split("|"), name
        assert set(JVM_OPTIONS.split()) <= set(args.split("|")), name


def test_azure_storage_settings_come_from_the_environment_only():
    assert azure_storage_settings({}) == {}
    account = {"FHIR_AZURE_STORAGE_ACCOUNT": "acct", "FHIR_AZURE_STORAGE_KEY": "k"}
    production = azure_storage_settings(account)
    assert production == {
        "fs.azure.account.auth.type.acct.dfs.core.windows.net": "SharedKey",
        "fs.azure.account.key.acct.dfs.core.windows.net": "k",
    }


def test_an_emulator_serves_abfss_uris_over_http_and_fails_fast():
    """abfss:// (production's scheme) goes through the plain-HTTP ABFS class when an
    emulator is configured: the secure class forced TLS on Azurite's HTTP port and
    retried silently for about 10 minutes. Checked against a real Azurite by
    tests/integration/test_cluster_e2e.py, whose lakehouse and landing are abfss://."""
    settings = azure_storage_settings(
        {
            "FHIR_AZURE_STORAGE_ACCOUNT": "devstoreaccount1",
            "FHIR_AZURE_STORAGE_KEY": "k",
            "FHIR_AZURE_STORAGE_ENDPOINT": "127.0.0.1:10000",
        }
    )
    assert settings["fs.abfss.impl"] == "org.apache.hadoop.fs.azurebfs.AzureBlobFileSystem"
    assert settings["fs.azure.abfs.endpoint"] == "127.0.0.1:10000"
    assert settings["fs.azure.always.use.https"] == "false"
    assert int(settings["fs.azure.io.retry.max.retries"]) <= 3
