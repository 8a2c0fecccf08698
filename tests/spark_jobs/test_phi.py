"""Keyed hashing of identifiers: the digests silver and gold join on."""

from __future__ import annotations

import hashlib
import hmac

from spark_jobs import phi
from tests.lakehouse_helpers import TEST_PHI_KEY


def _hmac(value: str) -> str:
    return hmac.new(TEST_PHI_KEY, value.encode(), hashlib.sha256).hexdigest()


def test_hash_is_hmac_sha256_per_row_and_null_stays_null(spark):
    ids = ["p1", None, "p1", "p2", None, "p1"]
    df = spark.createDataFrame([(i, v) for i, v in enumerate(ids)], "n int, id string")
    hashed = df.select("n", phi.hasher(TEST_PHI_KEY)("id").alias("h")).orderBy("n").collect()
    assert [r.h for r in hashed] == [None if v is None else _hmac(v) for v in ids]


def test_a_batch_of_only_nulls_hashes_to_nulls(spark):
    df = spark.createDataFrame([(None,), (None,)], "id string").coalesce(1)
    assert [r.h for r in df.select(phi.hasher(TEST_PHI_KEY)("id").alias("h")).collect()] == [None, None]
