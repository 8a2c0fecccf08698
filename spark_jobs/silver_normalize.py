"""Silver: normalised, de-identified clinical tables from bronze.

    python -m spark_jobs.silver_normalize --lakehouse <root-uri> --run-date D [--lookback-days N]
        [--views-folder <uri>]

Reads the bronze typed tables for ingestion dates (D - N, D]. Each core table is
silver's own SQL on FHIR ViewDefinition of its resource types
(include/silver_views/) followed by a pure clinical transform
(spark_jobs/silver/clinical.py). It MERGEs into
- `silver/observations_normalized` (one row per measurement: a panel with
  components such as blood pressure gives one row per component), clustered
  by observation_date and patient;
- `silver/medications_normalized` (MedicationStatement and MedicationRequest,
  `source_resource_type` says which), clustered by start_date and patient;
- `silver/patients_normalized`;
- `silver/encounters_normalized`, clustered by encounter_date and patient;
- `silver/conditions_normalized` (comorbidities for gold);
- `silver/resource_tombstones`: Bundle DELETEs, so a later rerun of an older
  date cannot bring a deleted resource back;
- `silver/<name>` for each SQL on FHIR ViewDefinition in include/views/ and in
  --views-folder (spark_jobs/sof/), with the same version and delete rules.

Versions: for each resource the newest version wins, ordered by
meta.lastUpdated (else the Bundle timestamp, else the ingestion date), then
meta.versionId, then ingestion date. A resource's silver rows change only when
a strictly newer version with different content arrives, and all its rows are
replaced in one MERGE, so reruns and overlapping lookback windows change
nothing. `entered-in-error` records are kept and flagged; gold drops them.

Dates (SPEC §5): each `*_ts` column is the event's exact instant in UTC; each
`*_date` column, and every day count, is the calendar date written in the record,
in the record's own offset (an evening event in New York keeps its own date).

PHI (SPEC §6): patient ids, MRNs and patient references become
HMAC-SHA256(FHIR_PHI_HASH_KEY, id); names, telecom, street lines, birth dates
and free text are never selected; addresses keep city, state and ZIP3.
"""

from __future__ import annotations

import argparse
import datetime as dt

from pyspark.sql import SparkSession

from spark_jobs import phi
from spark_jobs.lakehouse import configure_logging, run_job
from spark_jobs.session import build_spark_session
from spark_jobs.silver.job import SESSION_CONF, run


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="silver_normalize", description=__doc__.split("\n")[0])
    parser.add_argument("--lakehouse", required=True, help="lakehouse root URI")
    parser.add_argument("--run-date", required=True, type=dt.date.fromisoformat, help="YYYY-MM-DD")
    parser.add_argument(
        "--lookback-days",
        type=int,
        default=1,
        help="bronze ingestion dates to (re)process, ending at --run-date",
    )
    parser.add_argument(
        "--views-folder",
        help="a folder (local or abfss://) of ViewDefinitions to materialize besides include/views/",
    )
    args = parser.parse_args(argv)
    if args.lookback_days < 1:
        parser.error("--lookback-days must be >= 1")
    return args


def main(argv: list[str] | None = None, spark: SparkSession | None = None) -> dict:
    configure_logging()
    args = parse_args(argv)
    key = phi.load_phi_key()
    spark = spark or build_spark_session("fhir-silver-normalize", SESSION_CONF)
    return run(spark, phi_key=key, **vars(args))


if __name__ == "__main__":
    run_job(main)
