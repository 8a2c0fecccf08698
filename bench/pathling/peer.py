"""The Pathling peer: flatten Observation NDJSON with the benchmark's ViewDefinition.

Runs in bench/.venv-pathling (pyspark 4.0 + pathling), not the project venv:

    bench/.venv-pathling/bin/python bench/pathling/peer.py --input F [F ...] --out DIR

Reads the files as text, encodes them with Pathling (`pc.encode`, what its NDJSON
data source does per file), executes bench/observation_view.json (or --view) and writes the
rows as Parquet. Prints one JSON line: rows, seconds (read to written, the JVM
start excluded, as for the floor and our silver step).

Quantity values are selected through `forEachOrNull: value.ofType(Quantity)`:
two columns on `value.ofType(Quantity)` side by side in a `unionAll` make
Pathling 9.4 fail in Spark's optimizer ("The length of provided names doesn't
match the length of output attributes"); the nested select gives the same rows.
"""

from __future__ import annotations

import argparse
import glob
import json
import time
from pathlib import Path

from pathling import PathlingContext
from pyspark.sql import SparkSession

HERE = Path(__file__).resolve().parent
VIEW = HERE.parent / "observation_view.json"
JARS = HERE.parent / ".cache" / "pathling-jars"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--input", nargs="+", required=True, help="Observation NDJSON files")
    parser.add_argument("--out", required=True, help="Parquet output folder")
    parser.add_argument("--view", default=str(VIEW), help="the ViewDefinition file to run")
    parser.add_argument("--driver-memory", default="2g")
    parser.add_argument("--driver-java-options", default="", help="as our drivers get (bench/run.py)")
    args = parser.parse_args()

    jars = sorted(glob.glob(str(JARS / "*.jar")))
    if not jars:
        raise SystemExit(f"no Pathling jar in {JARS}: run `make bench` (it fetches it with Maven)")
    # Not spark_jobs.session.build_spark_session: that one adds the project's Delta jars,
    # built for Spark 4.2; this venv runs Spark 4.0. Same local settings otherwise.
    spark = (
        SparkSession.builder.appName("bench-pathling-peer")
        .master("local[2]")
        .config("spark.driver.memory", args.driver_memory)
        .config("spark.driver.extraJavaOptions", args.driver_java_options)
        .config("spark.jars", ",".join(jars))
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("WARN")
    pc = PathlingContext.create(spark, enable_terminology=False)

    started = time.perf_counter()
    text = spark.read.text(args.input)
    observations = pc.encode(text, "Observation")
    view = pc.read.datasets({"Observation": observations}).view(json=Path(args.view).read_text())
    view.write.mode("overwrite").parquet(args.out)
    seconds = time.perf_counter() - started
    rows = spark.read.parquet(args.out).count()
    print(json.dumps({"rows": rows, "seconds": round(seconds, 2)}))
    spark.stop()


if __name__ == "__main__":
    main()
