"""PHI protection (SPEC §6): keyed hashing of identifiers and de-identification helpers.

Identifiers become HMAC-SHA256(key, id) in hex. The key comes from the
environment (`FHIR_PHI_HASH_KEY`, which Airflow fills from a connection or
Key Vault-backed variable) and is never logged, stored or put into a query
plan: it only travels inside the pickled hashing function.
"""

from __future__ import annotations

import hashlib
import hmac
import os

import pandas as pd
from pyspark.sql import Column
from pyspark.sql import functions as F

from spark_jobs.lakehouse import PermanentJobError

KEY_ENV_VAR = "FHIR_PHI_HASH_KEY"
MIN_KEY_BYTES = 16


class MissingPhiKeyError(PermanentJobError):
    pass


def load_phi_key(environ: dict[str, str] | None = None) -> bytes:
    """The hashing key, or a clear error before any data is touched."""
    value = (environ if environ is not None else os.environ).get(KEY_ENV_VAR, "")
    if not value.strip():
        raise MissingPhiKeyError(
            f"{KEY_ENV_VAR} is not set: identifiers cannot be hashed, so nothing was processed. "
            "Locally `make setup` generates it into .local/phi_hash_key; in Airflow it comes from "
            "the fhir_phi_hash_key secret."
        )
    key = value.strip().encode()
    if len(key) < MIN_KEY_BYTES:
        raise MissingPhiKeyError(f"{KEY_ENV_VAR} is too short (need at least {MIN_KEY_BYTES} bytes).")
    return key


def hmac_hex(key: bytes, value: str) -> str:
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


def hasher(key: bytes):
    """A Spark column function: identifier column -> HMAC-SHA256 hex (null stays null)."""

    @F.pandas_udf("string")
    def hash_identifier(values: pd.Series) -> pd.Series:
        # A batch holds few distinct identifiers (a patient's observations arrive
        # together): each is hashed once. Nulls find no digest and stay null; an
        # all-null batch maps to float NaN, hence the cast.
        digests = {v: hmac_hex(key, v) for v in values.dropna().unique()}
        return values.map(digests).astype(object)

    def apply(column: Column | str) -> Column:
        return hash_identifier(F.col(column) if isinstance(column, str) else column)

    return apply


AGE_CAP = 90  # ages over 89 are reported as 90 (HIPAA Safe Harbor)


def age_bucket(age: Column) -> Column:
    return (
        F.when(age.isNull(), F.lit(None))
        .when(age < 18, "0-17")
        .when(age < 30, "18-29")
        .when(age < 40, "30-39")
        .when(age < 50, "40-49")
        .when(age < 60, "50-59")
        .when(age < 70, "60-69")
        .when(age < 80, "70-79")
        .when(age < 90, "80-89")
        .otherwise("90+")
    )
