"""Airflow-side code shared by the DAGs: task factories, notifiers, deadline
callbacks, sensors, the DAG policy. Importable from DAG files because Airflow
puts the plugins folder on sys.path for every component."""
