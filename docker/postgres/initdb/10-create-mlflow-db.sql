-- Runs once, when the postgres-data volume is initialised (docker-entrypoint-initdb.d):
-- the MLflow tracking server keeps its backend store in its own database, beside
-- the Airflow metadata database created from POSTGRES_DB.
CREATE DATABASE mlflow OWNER airflow;
