-- Runs once, when the postgres-data volume is initialised (docker-entrypoint-initdb.d):
-- Marquez (the OpenLineage server) keeps its lineage graph in its own database.
CREATE DATABASE marquez OWNER airflow;
