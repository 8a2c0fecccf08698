"""The providers' private APIs this project relies on, each used here and nowhere else.

No public API gives what these do: the spark-submit command line a hook would run
(the stream supervisor starts that command detached, outliving its task), the exit
status of the spark-submit a hook ran (the public `submit()` only raises), and a
Jobs API call the Databricks hook has no method for (a job's active runs).
tests/plugins/test_provider_internals.py checks each against the installed
provider, so an upgrade that changes one fails there, by name, rather than in a
task at night.
"""

from __future__ import annotations

from typing import Any


def spark_submit_command(hook, application: str) -> list[str]:
    """The command `SparkSubmitHook.submit(application)` would run."""
    return hook._build_spark_submit_command(application)


def spark_submit_exit_status(hook) -> int | None:
    """The exit status of the spark-submit `hook.submit()` ran; None when it never started."""
    process = getattr(hook, "_submit_sp", None) if hook is not None else None
    return process.returncode if process is not None else None


def databricks_api_call(hook, method: str, endpoint: str, payload: dict[str, Any]) -> dict[str, Any]:
    """A Jobs API request through the hook's authentication and retries (endpoint
    without the `api/` prefix, e.g. `2.2/jobs/runs/list`)."""
    return hook._do_api_call((method, endpoint), payload)
