"""Production serving: register an MLflow champion in Azure ML and serve it from a
managed online endpoint (azure-ai-ml, SDK v2). Off unless configured.

    python -m spark_jobs.azure_ml_deploy --tracking-uri <uri> --model fhir_diabetes_risk [...]

Configuration (arguments or environment):
  AZUREML_SUBSCRIPTION_ID, AZUREML_RESOURCE_GROUP, AZUREML_WORKSPACE  the workspace
  FHIR_AZUREML_INSTANCE_TYPE (default Standard_DS3_v2), FHIR_AZUREML_INSTANCE_COUNT (1)
What is registered and how traffic moves: spark_jobs/ml/azure_deploy.py.
"""

from __future__ import annotations

import argparse
import os

from spark_jobs.lakehouse import configure_logging, run_job
from spark_jobs.ml.azure_deploy import AzureMLTarget, run
from spark_jobs.ml.specs import model_specs
from spark_jobs.session import build_spark_session


def target_from(args: argparse.Namespace) -> AzureMLTarget | None:
    if not (args.subscription_id and args.resource_group and args.workspace):
        return None
    return AzureMLTarget(
        args.subscription_id, args.resource_group, args.workspace, args.instance_type, args.instance_count
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(prog="azure_ml_deploy", description=__doc__.split("\n")[0])
    parser.add_argument("--tracking-uri", default=env("MLFLOW_TRACKING_URI"))
    parser.add_argument("--model", nargs="+", default=None, help="default: every declared model")
    parser.add_argument("--subscription-id", default=env("AZUREML_SUBSCRIPTION_ID"))
    parser.add_argument("--resource-group", default=env("AZUREML_RESOURCE_GROUP"))
    parser.add_argument("--workspace", default=env("AZUREML_WORKSPACE"))
    parser.add_argument("--instance-type", default=env("FHIR_AZUREML_INSTANCE_TYPE", "Standard_DS3_v2"))
    parser.add_argument("--instance-count", type=int, default=int(env("FHIR_AZUREML_INSTANCE_COUNT", "1")))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None, spark: object | None = None) -> list[dict[str, str]]:
    """`spark` is the job server's session, which registration does not use."""
    configure_logging()
    args = parse_args(argv)
    target = target_from(args)
    models = args.model
    if target is not None and models is None:
        if spark is None:  # spark-submit unpacks include/, which declares the models, with a session
            build_spark_session("fhir-azure-ml-deploy")
        models = list(model_specs())
    return run(tracking_uri=args.tracking_uri, models=models, target=target)


if __name__ == "__main__":
    run_job(main)
