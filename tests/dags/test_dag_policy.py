"""The DAG policy (plugins/fhir_pipeline/dag_policy.py) is enforced at parse time."""

from __future__ import annotations

from pathlib import Path

from airflow.models import DagBag

FIXTURES = Path(__file__).parent / "fixtures"


def test_compliant_dag_loads_and_breaching_dag_is_rejected_with_every_breach_named():
    # No explicit policy call: airflow_local_settings.py in plugins/ registers it
    # as a cluster policy, exactly as in the scheduler and dag-processor.
    bag = DagBag(dag_folder=str(FIXTURES))
    assert "policy_fixture_compliant" in bag.dag_ids
    assert "policy_fixture_breaching" not in bag.dag_ids
    [(path, error)] = bag.import_errors.items()
    assert path.endswith("breaching_dag.py")
    for breach in [
        "no doc_md",
        "tagged 'batch' but has no deadline alert",
        "task work: retries=1 (need >= 2)",
        "task work: no retry_exponential_backoff",
        "task work: no max_retry_delay",
        "task work: no execution_timeout",
        "task work: no on_failure_callback",
        "task work: owner='airflow'",
    ]:
        assert breach in error, (breach, error)
