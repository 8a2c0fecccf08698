"""Airflow cluster policies for this deployment (imported by every Airflow
component, since the plugins folder is on sys.path)."""

from fhir_pipeline.dag_policy import dag_policy

__all__ = ["dag_policy"]
