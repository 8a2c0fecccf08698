"""What the Spark jobs and the Airflow side agree on, with no dependencies, so the
Airflow side reads it without importing pyspark.

How a job ends, on either backend:
- success: exit status 0;
- skipped (nothing to do: no new data, nothing to train on): spark-submit sees
  EXIT_SKIPPED; on Databricks the run fails with an error that starts with
  SKIPPED_ERROR_PREFIX (a Python task has no other way to say it). The task is
  marked skipped and pages nobody;
- permanent failure (bad input or configuration): EXIT_PERMANENT, or an error
  starting with PERMANENT_ERROR_PREFIX on Databricks. The task fails at once;
- anything else fails the task, which retries per policy and then pages.
"""

EXIT_PERMANENT = 2
# Airflow's own convention for "skip" (BashOperator's skip_on_exit_code).
EXIT_SKIPPED = 99
SKIPPED_ERROR_PREFIX = "JobSkipped:"
PERMANENT_ERROR_PREFIX = "PermanentJobError:"
# The job server (spark_jobs/job_server.py) ends each job's streamed log with this line
# and the job's exit status.
SERVER_EXIT_STATUS_PREFIX = "exit status: "
