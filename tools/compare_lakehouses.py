"""Compare two lakehouses table by table, row for row: the check that a refactor of
silver or gold changed nothing.

    python -m tools.compare_lakehouses <root A> <root B> [--layers silver gold]
        [--ignore COLUMN ...]

For every Delta table under <root>/<layer>/ in either root: the schemas must match and
the rows must be equal as multisets (every column but the --ignore'd run metadata;
nested values compared as their JSON). Prints one line per table and exits 1 on any
difference.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from pathlib import Path

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from spark_jobs.lakehouse import read_table
from spark_jobs.session import build_spark_session

# Columns that record when or by which run a row was written, not what it says.
RUN_METADATA = ("run_id", "computed_at", "ingestion_ts", "created_at", "updated_at")


def tables(root: Path, layer: str) -> set[str]:
    folder = root / layer
    return {p.parent.name for p in folder.glob("*/_delta_log")} if folder.is_dir() else set()


def comparable(df: DataFrame, ignore: set[str]) -> DataFrame:
    """The frame without run metadata, nested values as JSON text (maps cannot be compared)."""
    columns = []
    for field in df.schema.fields:
        if field.name in ignore:
            continue
        nested = isinstance(field.dataType, T.MapType | T.ArrayType | T.StructType)
        columns.append(F.to_json(F.col(field.name)).alias(field.name) if nested else F.col(field.name))
    return df.select(*columns)


# Decimals floating-point values are compared to in a checksum: a distributed aggregate
# adds its partial sums in whatever order they arrive, which moves the last bits.
CHECKSUM_DIGITS = 9


def table_checksum(df: DataFrame, ignore: Iterable[str] = RUN_METADATA) -> tuple[int, int]:
    """(row count, checksum): the sum of every row's 64-bit hash over every column but
    `ignore` (nested values as JSON, floating point to CHECKSUM_DIGITS decimals, which
    columns are null hashed too), so the order of the rows does not matter."""
    frame = comparable(df, set(ignore))
    columns = [
        F.round(F.col(f.name), CHECKSUM_DIGITS)
        if isinstance(f.dataType, T.FloatType | T.DoubleType)
        else F.col(f.name)
        for f in frame.schema.fields
    ]
    nulls = F.array(*[column.isNull() for column in columns])
    row_hash = F.xxhash64(*columns, nulls).cast(T.DecimalType(20, 0))
    count, total = frame.select(F.count(F.lit(1)), F.sum(row_hash)).first()
    return count, int(total or 0)


def compare(spark, a: Path, b: Path, layer: str, name: str, ignore: set[str]) -> str | None:
    """A description of how the two tables differ, or None when they do not."""
    left = read_table(spark, str(a / layer / name))
    right = read_table(spark, str(b / layer / name))
    if left.schema.simpleString() != right.schema.simpleString():
        return f"schemas differ:\n    A {left.schema.simpleString()}\n    B {right.schema.simpleString()}"
    left, right = comparable(left, ignore), comparable(right, ignore)
    only_a, only_b = left.exceptAll(right).count(), right.exceptAll(left).count()
    if only_a or only_b:
        return f"{left.count()} vs {right.count()} rows: {only_a} only in A, {only_b} only in B"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="compare_lakehouses", description=__doc__.split("\n")[0])
    parser.add_argument("a", type=Path)
    parser.add_argument("b", type=Path)
    parser.add_argument("--layers", nargs="+", default=["silver", "gold"])
    parser.add_argument("--ignore", nargs="*", default=list(RUN_METADATA), help="run metadata columns")
    args = parser.parse_args(argv)
    spark = build_spark_session("compare-lakehouses", {})
    differences = 0
    for layer in args.layers:
        names_a, names_b = tables(args.a, layer), tables(args.b, layer)
        for name in sorted(names_a | names_b):
            if name not in names_a or name not in names_b:
                problem = f"only in {'A' if name in names_a else 'B'}"
            else:
                problem = compare(spark, args.a, args.b, layer, name, set(args.ignore))
            rows = "" if problem else f" ({read_table(spark, str(args.a / layer / name)).count()} rows)"
            print(f"{layer}/{name}: {problem or 'identical'}{rows}", flush=True)
            differences += problem is not None
    print(f"{differences} table(s) differ")
    return 1 if differences else 0


if __name__ == "__main__":
    sys.exit(main())
