"""Silver: normalised, de-identified tables from bronze, as SQL on FHIR views
(spark_jobs/sof/) followed by pure clinical transforms."""
