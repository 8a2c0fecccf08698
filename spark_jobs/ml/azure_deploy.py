"""Production serving: register an MLflow champion in Azure ML and serve it from a
managed online endpoint (azure-ai-ml, SDK v2). Off unless configured.

Authentication is DefaultAzureCredential (managed identity in production).
Without a workspace the job ends JobSkipped (exit status 99): the task is skipped,
with the reason in its log.

Steps for each model: download `models:/<name>@champion` from MLflow, register it
as an Azure ML MLflow model (same name, version = MLflow version, tags), create or
update the endpoint `<name>` (key auth), create or update the deployment
`v<version>` and send it 100% of the traffic.

The live Azure calls are not exercised in this repository's tests (no network):
tests check the objects built here and the exact client calls made, against a
recording stand-in for MLClient.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass

from spark_jobs.lakehouse import JobSkipped
from spark_jobs.ml.registry import CHAMPION, champion_version

log = logging.getLogger("fhir_lakehouse.azure_ml")


@dataclass(frozen=True)
class AzureMLTarget:
    subscription_id: str
    resource_group: str
    workspace: str
    instance_type: str = "Standard_DS3_v2"
    instance_count: int = 1


def endpoint_name(model_name: str) -> str:
    # Endpoint names: 3-32 chars, letters, digits and dashes, unique in the region.
    return model_name.replace("_", "-")[:32]


def build_assets(model_name: str, version: str, model_dir: str, tags: dict[str, str], target: AzureMLTarget):
    """The Azure ML objects for one champion: (Model, ManagedOnlineEndpoint, ManagedOnlineDeployment)."""
    from azure.ai.ml.constants import AssetTypes
    from azure.ai.ml.entities import ManagedOnlineDeployment, ManagedOnlineEndpoint, Model

    model = Model(
        name=model_name,
        version=version,
        path=model_dir,
        type=AssetTypes.MLFLOW_MODEL,
        description=f"MLflow champion {model_name} v{version} from the FHIR lakehouse",
        tags=tags,
    )
    endpoint = ManagedOnlineEndpoint(
        name=endpoint_name(model_name),
        auth_mode="key",
        description=f"{model_name} risk scores",
        tags={"model": model_name, "phi_included": "false"},
    )
    deployment = ManagedOnlineDeployment(
        name=f"v{version}",
        endpoint_name=endpoint.name,
        model=f"azureml:{model_name}:{version}",
        instance_type=target.instance_type,
        instance_count=target.instance_count,
        tags={"mlflow_version": version},
    )
    return model, endpoint, deployment


def deploy_champion(ml_client, mlflow_client, model_name: str, target: AzureMLTarget) -> dict[str, str]:
    """Register the champion and route the endpoint's traffic to it (idempotent by version)."""
    import mlflow

    champion = mlflow_client.get_model_version_by_alias(model_name, CHAMPION)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = mlflow.artifacts.download_artifacts(f"models:/{model_name}@{CHAMPION}", dst_path=tmp)
        tags = {k: v for k, v in champion.tags.items() if k in ("test_auc", "threshold", "hipaa_compliant")}
        model, endpoint, deployment = build_assets(model_name, str(champion.version), model_dir, tags, target)
        registered = ml_client.models.create_or_update(model)
    ml_client.online_endpoints.begin_create_or_update(endpoint).result()
    ml_client.online_deployments.begin_create_or_update(deployment).result()
    endpoint.traffic = {deployment.name: 100}
    ml_client.online_endpoints.begin_create_or_update(endpoint).result()
    log.info(
        "Azure ML: %s v%s serving at endpoint %s (deployment %s)",
        model_name,
        champion.version,
        endpoint.name,
        deployment.name,
    )
    return {
        "model": registered.name,
        "version": str(registered.version),
        "endpoint": endpoint.name,
        "deployment": deployment.name,
    }


def run(*, tracking_uri: str, models: Sequence[str], target: AzureMLTarget | None) -> list[dict[str, str]]:
    """Deploy the champion of each of `models` that has one; JobSkipped without a target."""
    if target is None:
        raise JobSkipped(
            "Azure ML is not configured (AZUREML_SUBSCRIPTION_ID/RESOURCE_GROUP/WORKSPACE unset)"
        )
    import mlflow
    from azure.ai.ml import MLClient
    from azure.identity import DefaultAzureCredential
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(tracking_uri)
    ml_client = MLClient(
        DefaultAzureCredential(), target.subscription_id, target.resource_group, target.workspace
    )
    client = MlflowClient()
    champions = [name for name in models if champion_version(client, name) is not None]
    for name in sorted(set(models) - set(champions)):
        log.info("%s has no @%s yet: not deployed", name, CHAMPION)
    return [deploy_champion(ml_client, client, name, target) for name in champions]
