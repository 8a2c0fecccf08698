"""Model training, MLflow registry, champion promotion, batch scoring and the
Azure ML deployment calls, on generated data through the real pipeline."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyspark.sql import functions as F

from spark_jobs import azure_ml_deploy, model_registry, score_risk, train_models
from spark_jobs.lakehouse import JobSkipped, read_table
from spark_jobs.model_registry import CHAMPION
from spark_jobs.train_models import DIABETES_MODEL, READMISSION_MODEL

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def trained(spark, generated_lakehouse, tmp_path_factory):
    lakehouse, as_of = generated_lakehouse
    root = tmp_path_factory.mktemp("mlflow")
    tracking_uri = f"sqlite:///{root}/mlflow.db"
    args = train_models.parse_args(
        [
            "--lakehouse",
            str(lakehouse),
            "--tracking-uri",
            tracking_uri,
            "--as-of",
            as_of.isoformat(),
            "--artifact-root",
            str(root / "artifacts"),
        ]
    )
    results = train_models.run(spark, args)
    return lakehouse, as_of, tracking_uri, args, results


def test_both_models_train_with_test_auc_above_0_7(trained):
    *_, results = trained
    for name in (DIABETES_MODEL, READMISSION_MODEL):
        result = results[name]
        assert result["test_auc"] > 0.7, (name, result)
        assert result["promoted"] and result["version"] == "1"
        assert set(result["validation_auc"]) == {
            "random_forest",
            "gradient_boosted_trees",
            "logistic_regression",
        }
        assert result["algorithm"] == max(result["validation_auc"], key=result["validation_auc"].get)
        assert 0 < result["positives"]["test"] < result["rows"]["test"]


def test_runs_record_metrics_artifacts_data_versions_and_governance_tags(trained):
    import mlflow
    from mlflow.tracking import MlflowClient

    _, _, tracking_uri, _, results = trained
    mlflow.set_tracking_uri(tracking_uri)
    client = MlflowClient()
    for name, result in results.items():
        run = client.get_run(result["run_id"])
        for metric in ("test_auc", "test_accuracy", "test_precision", "test_recall", "test_f1"):
            assert metric in run.data.metrics
        assert any(k.startswith("feature_importance_") for k in run.data.metrics)
        assert run.data.params["data_version_silver_observations_normalized"].isdigit()
        assert run.data.tags["hipaa_compliant"] == "true" and run.data.tags["phi_included"] == "false"
        assert run.data.tags["use_case"] and run.data.tags["training_date"]
        artifacts = {a.path for a in client.list_artifacts(result["run_id"])}
        assert {
            "roc_curve.png",
            "feature_importance.png",
            "feature_importance.json",
            "features.json",
        } <= artifacts
        champion = client.get_model_version_by_alias(name, CHAMPION)
        assert str(champion.version) == result["version"]


def test_champion_loads_by_alias_and_scores_every_patient(spark, trained):
    import mlflow

    lakehouse, as_of, tracking_uri, _, _ = trained
    mlflow.set_tracking_uri(tracking_uri)
    model = mlflow.spark.load_model(f"models:/{DIABETES_MODEL}@{CHAMPION}")
    assert score_risk.model_inputs(model)

    counts = score_risk.run(
        spark,
        score_risk.parse_args(
            ["--lakehouse", str(lakehouse), "--tracking-uri", tracking_uri, "--as-of", as_of.isoformat()]
        ),
    )

    def gold(table):
        return read_table(spark, str(lakehouse / "gold" / table)).filter(F.col("as_of_date") == F.lit(as_of))

    assert counts[DIABETES_MODEL] == gold("chronic_disease_features").count()
    assert (
        counts[READMISSION_MODEL]
        == gold("readmission_features").select("patient_id_hashed").distinct().count()
    )
    scores = gold("risk_scores")
    bad = scores.filter(~F.col("risk_score").between(0, 1) | (F.col("model_version") != "1"))
    assert bad.count() == 0


def _train(spark, trained, *extra: str) -> dict:
    lakehouse, as_of, tracking_uri, _, _ = trained
    argv = ["--lakehouse", str(lakehouse), "--tracking-uri", tracking_uri, "--as-of", as_of.isoformat()]
    return train_models.run(spark, train_models.parse_args([*argv, *extra]))


def test_a_retrained_model_that_is_not_better_does_not_take_the_alias(spark, trained):
    """Forced onto the same inputs with a 1-day diabetes horizon: the diabetes model has too
    few labelled patients and is skipped, while the readmission model still trains."""
    import mlflow
    from mlflow.tracking import MlflowClient

    _, _, tracking_uri, _, first = trained
    again = _train(spark, trained, "--horizon-days", "1", "--force")
    mlflow.set_tracking_uri(tracking_uri)
    client = MlflowClient()
    assert again[DIABETES_MODEL]["skipped"].startswith("not enough labelled rows")
    readmission = again[READMISSION_MODEL]
    # Same data and seed: the same test AUC, which is not better, so the champion stays.
    assert readmission["version"] == "2"
    assert readmission["test_auc"] == pytest.approx(first[READMISSION_MODEL]["test_auc"])
    assert not readmission["promoted"]
    assert client.get_model_version_by_alias(READMISSION_MODEL, CHAMPION).version == 1
    assert client.get_run(readmission["run_id"]).data.tags["champion_decision"].startswith("kept champion v1")


def test_training_again_on_the_same_gold_is_skipped_with_its_reason(spark, trained):
    """The weekly fallback after no new batch run: nothing to do, not a failure."""
    with pytest.raises(
        JobSkipped, match="no new gold since fhir_diabetes_risk, fhir_readmission_30d were last"
    ):
        _train(spark, trained)


def test_a_model_with_too_few_labels_is_skipped_logged_and_counted(spark, trained):
    """A 1-day horizon leaves almost no labelled patients: the diabetes model is not
    retrained, its attempt is an MLflow run with the counts, and its champion (from the
    fixture) counts one more run without retraining each time."""
    import mlflow
    from mlflow.tracking import MlflowClient

    _, _, tracking_uri, _, _ = trained
    client = MlflowClient(tracking_uri=tracking_uri)
    champion_before = client.get_model_version_by_alias(DIABETES_MODEL, CHAMPION).version

    def skips() -> int:
        return int(client.get_registered_model(DIABETES_MODEL).tags.get(model_registry.SKIPS_TAG, "0"))

    counted = [skips()]
    for _ in range(2):
        with pytest.raises(
            JobSkipped, match="no model trained: fhir_diabetes_risk: not enough labelled rows"
        ):
            _train(spark, trained, "--models", DIABETES_MODEL, "--horizon-days", "1", "--force")
        counted.append(skips())
    assert counted[1:] == [counted[0] + 1, counted[0] + 2]
    assert client.get_model_version_by_alias(DIABETES_MODEL, CHAMPION).version == champion_before
    mlflow.set_tracking_uri(tracking_uri)
    [run, *_] = mlflow.search_runs(
        experiment_names=[DIABETES_MODEL], filter_string="tags.outcome = 'skipped'", output_format="list"
    )
    assert run.data.tags["skip_reason"].startswith("not enough labelled rows")
    assert int(run.data.params["test_rows"]) < 20
    [stale] = model_registry.stale_champions_to_page(client, page_after=2)
    assert (stale.model, stale.skips) == (DIABETES_MODEL, counted[-1])


def test_scoring_uses_the_champions_there_are(spark, trained):
    """A model without a champion (never trained on enough rows) is not scored; the others are."""
    from mlflow.tracking import MlflowClient

    lakehouse, as_of, tracking_uri, _, _ = trained
    client = MlflowClient(tracking_uri=tracking_uri)
    champion = client.get_model_version_by_alias(READMISSION_MODEL, CHAMPION).version
    client.delete_registered_model_alias(READMISSION_MODEL, CHAMPION)
    argv = ["--lakehouse", str(lakehouse), "--tracking-uri", tracking_uri, "--as-of", as_of.isoformat()]
    try:
        counts = score_risk.run(spark, score_risk.parse_args(argv))
    finally:
        client.set_registered_model_alias(READMISSION_MODEL, CHAMPION, champion)
    assert set(counts) == {DIABETES_MODEL} and counts[DIABETES_MODEL] > 0
    scores = read_table(spark, str(lakehouse / "gold" / "risk_scores")).filter(
        F.col("as_of_date") == F.lit(as_of)
    )
    assert {r.model_name for r in scores.select("model_name").distinct().collect()} == {DIABETES_MODEL}


class _Poller:
    def __init__(self, value):
        self.value = value

    def result(self):
        return self.value


class RecordingMLClient:
    """Stands in for azure.ai.ml.MLClient: records each call and the object sent."""

    def __init__(self):
        self.calls = []
        outer = self

        class Operations:
            def __init__(self, name):
                self.name = name

            def create_or_update(self, entity):
                outer.calls.append(
                    (f"{self.name}.create_or_update", entity, sorted(Path(entity.path).iterdir()))
                )
                return entity

            def begin_create_or_update(self, entity):
                outer.calls.append(
                    (
                        f"{self.name}.begin_create_or_update",
                        entity,
                        dict(getattr(entity, "traffic", None) or {}),  # endpoints carry the traffic split
                    )
                )
                return _Poller(entity)

        self.models = Operations("models")
        self.online_endpoints = Operations("online_endpoints")
        self.online_deployments = Operations("online_deployments")


def test_azure_ml_registers_the_champion_and_routes_traffic_to_it(trained):
    import mlflow
    from azure.ai.ml.constants import AssetTypes
    from mlflow.tracking import MlflowClient

    _, _, tracking_uri, _, _ = trained
    mlflow.set_tracking_uri(tracking_uri)
    client = RecordingMLClient()
    target = azure_ml_deploy.AzureMLTarget("sub-id", "rg-fhir", "ws-fhir", "Standard_DS3_v2", 2)

    result = azure_ml_deploy.deploy_champion(client, MlflowClient(), DIABETES_MODEL, target)

    assert [c[0] for c in client.calls] == [
        "models.create_or_update",
        "online_endpoints.begin_create_or_update",
        "online_deployments.begin_create_or_update",
        "online_endpoints.begin_create_or_update",
    ]
    (_, model, files), (_, endpoint, traffic_before), (_, deployment, _), (_, _, traffic_after) = client.calls
    assert (model.name, model.version, model.type) == (DIABETES_MODEL, "1", AssetTypes.MLFLOW_MODEL)
    assert "MLmodel" in {f.name for f in files}  # the champion's MLflow model directory is what is uploaded
    assert model.tags["hipaa_compliant"] == "true" and float(model.tags["test_auc"]) > 0.7
    assert (endpoint.name, endpoint.auth_mode) == ("fhir-diabetes-risk", "key")
    assert traffic_before == {}
    assert (deployment.name, deployment.endpoint_name) == ("v1", "fhir-diabetes-risk")
    assert deployment.model == f"azureml:{DIABETES_MODEL}:1"
    assert (deployment.instance_type, deployment.instance_count) == ("Standard_DS3_v2", 2)
    assert traffic_after == {"v1": 100}
    assert result == {
        "model": DIABETES_MODEL,
        "version": "1",
        "endpoint": "fhir-diabetes-risk",
        "deployment": "v1",
    }


def test_azure_ml_is_off_unless_configured(monkeypatch):
    for var in ("AZUREML_SUBSCRIPTION_ID", "AZUREML_RESOURCE_GROUP", "AZUREML_WORKSPACE"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(JobSkipped, match="Azure ML is not configured"):
        azure_ml_deploy.main(["--tracking-uri", "sqlite:///unused.db"])
