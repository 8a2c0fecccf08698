"""The rules every DAG in this repository must follow, enforced at parse time.

`airflow_local_settings.py` (beside this package) registers `dag_policy` as an
Airflow cluster policy, so the dag-processor rejects a breaching DAG with an
import error naming each breach, and the DagBag integrity tests see the same.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.exceptions import AirflowClusterPolicyViolation

MIN_RETRIES = 2
# DAGs carrying this tag run on a schedule and must page when they run late.
BATCH_TAG = "batch"


def task_breaches(task) -> list[str]:
    """What a task lacks: retries with capped exponential backoff, a timeout, a failure page."""
    problems = []
    if (task.retries or 0) < MIN_RETRIES:
        problems.append(f"retries={task.retries} (need >= {MIN_RETRIES})")
    if not task.retry_exponential_backoff:
        problems.append("no retry_exponential_backoff")
    if not isinstance(task.max_retry_delay, timedelta):
        problems.append("no max_retry_delay (the backoff cap)")
    if not isinstance(task.execution_timeout, timedelta):
        problems.append("no execution_timeout")
    if not task.on_failure_callback:
        problems.append("no on_failure_callback (failures after the last retry must page)")
    if task.owner in (None, "", "airflow"):
        problems.append(f"owner={task.owner!r} (set a team owner in default_args)")
    return [f"task {task.task_id}: {p}" for p in problems]


def dag_breaches(dag) -> list[str]:
    problems = []
    if not dag.tags:
        problems.append("no tags")
    if not (dag.doc_md or "").strip():
        problems.append("no doc_md (use the module docstring)")
    if BATCH_TAG in (dag.tags or ()) and not dag.deadline:
        problems.append(f"tagged {BATCH_TAG!r} but has no deadline alert")
    for task in dag.tasks:
        problems.extend(task_breaches(task))
    return problems


def dag_policy(dag) -> None:
    problems = dag_breaches(dag)
    if problems:
        raise AirflowClusterPolicyViolation(
            f"DAG {dag.dag_id} breaks the repository DAG policy: " + "; ".join(problems)
        )
