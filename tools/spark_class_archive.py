"""Record the class-data-sharing archive local Spark drivers start from (`make setup`).

    python -m tools.spark_class_archive [--out .local/spark-classes.jsa] [--patients 30]

A local Spark job spends its first seconds loading and linking the JVM classes
of Spark, Scala and Catalyst, in every process (each Airflow task, each
benchmark stage). A JDK dynamic CDS archive of those classes lets the next
driver JVM map them instead: `spark_jobs.session` passes
`-XX:SharedArchiveFile` when the archive exists. The archive is recorded by a
JVM that runs bronze, silver and gold on a few generated patients, so it holds
the classes the pipeline's jobs really load. Classes of the `--jars` (Delta,
hadoop-azure) come from Spark's own class loader and are not archived.

The archive is only valid for the JDK and the pyspark jars that recorded it. A
JVM that cannot use it (after a JDK or pyspark upgrade) prints one
"Unable to use shared archive" warning and starts normally; rerun this
(or delete the file and `make setup`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import secrets
import shlex
import tempfile
import time
from pathlib import Path

from pyspark import SparkContext

from fhir_contract import CLASS_ARCHIVE, DRIVER_JAVA_OPTIONS
from spark_jobs.bronze import job as bronze
from spark_jobs.gold import job as gold
from spark_jobs.lakehouse import configure_logging
from spark_jobs.session import build_spark_session
from spark_jobs.silver import job as silver
from tools.fhir_generator import generate

log = logging.getLogger("fhir_lakehouse.class_archive")

RUN_DATE = dt.date(2026, 1, 15)


def run_pipeline(root: Path, patients: int) -> None:
    """Bronze, silver and gold on `patients` generated patients, in the active JVM."""
    spark = build_spark_session("spark-class-archive")
    landing, lakehouse, day = root / "landing", str(root / "lakehouse"), RUN_DATE.isoformat()
    generate(patients=patients, seed=7, out=landing, date=day, progress=False)
    bronze.run(spark, landing=str(landing), lakehouse=lakehouse, run_date=RUN_DATE)
    # A throwaway key: nothing recorded here is kept but the JVM's classes.
    silver.run(spark, lakehouse=lakehouse, run_date=RUN_DATE, phi_key=secrets.token_bytes(32))
    gold.run(spark, lakehouse=lakehouse, as_of=RUN_DATE)


def stop_jvm(timeout_seconds: float = 300) -> None:
    """Stop Spark and wait for its JVM to exit: the archive is written on the way out."""
    spark = build_spark_session("spark-class-archive")
    spark.stop()
    gateway = SparkContext._gateway
    gateway.shutdown()
    # The gateway JVM exits when its stdin closes (PythonGatewayServer).
    gateway.proc.stdin.close()
    gateway.proc.wait(timeout=timeout_seconds)


def record(out: Path, patients: int) -> Path:
    partial = out.with_name(out.name + ".partial")
    partial.unlink(missing_ok=True)
    started = time.perf_counter()
    options = f"{DRIVER_JAVA_OPTIONS} -XX:ArchiveClassesAtExit={shlex.quote(str(partial))} -Xlog:cds=error"
    build_spark_session("spark-class-archive", {"spark.driver.extraJavaOptions": options})
    with tempfile.TemporaryDirectory(prefix="spark-class-archive-") as tmp:
        run_pipeline(Path(tmp), patients)
    stop_jvm()
    if not partial.is_file():
        raise SystemExit(f"The JVM exited without writing {partial}: no class archive recorded.")
    partial.replace(out)
    log.info(
        "Class archive %s: %d MiB, recorded in %.0f s",
        out,
        out.stat().st_size // 2**20,
        time.perf_counter() - started,
    )
    return out


def main(argv: list[str] | None = None) -> None:
    configure_logging()
    parser = argparse.ArgumentParser(prog="spark_class_archive", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--out", type=Path, default=CLASS_ARCHIVE, help=f"archive file (default {CLASS_ARCHIVE})"
    )
    parser.add_argument("--patients", type=int, default=30, help="generated patients the recording JVM runs")
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    record(args.out.resolve(), args.patients)


if __name__ == "__main__":
    main()
