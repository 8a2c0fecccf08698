"""Model training, MLflow registry, champion promotion, batch scoring and the
Azure ML deployment calls, on generated data through the real pipeline."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from fhir_contract import job_summary_path
from spark_jobs import azure_ml_deploy, score_risk, train_models
from spark_jobs.lakehouse import JobSkipped, read_table
from spark_jobs.ml import registry, scoring, train_job
from spark_jobs.ml.azure_deploy import AzureMLTarget, deploy_champion
from spark_jobs.ml.drift import SUBJECT as DRIFT_SUBJECT
from spark_jobs.ml.registry import CHAMPION
from spark_jobs.ml.specs import ModelSpecError, model_specs
from spark_jobs.ml.stale_champions import SUBJECT

DIABETES_MODEL, READMISSION_MODEL = "fhir_diabetes_risk", "fhir_readmission_30d"

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def trained(spark, generated_lakehouse, tmp_path_factory):
    lakehouse, as_of = generated_lakehouse
    root = tmp_path_factory.mktemp("mlflow")
    tracking_uri = f"sqlite:///{root}/mlflow.db"
    results = train_job.run(
        spark,
        lakehouse=str(lakehouse),
        tracking_uri=tracking_uri,
        as_of=as_of,
        artifact_root=str(root / "artifacts"),
    )
    return lakehouse, as_of, tracking_uri, results


def test_both_models_train_with_test_auc_above_0_7(trained):
    *_, results = trained
    for name in (DIABETES_MODEL, READMISSION_MODEL):
        result = results[name]
        assert result["test_auc"] > 0.7, (name, result)
        assert result["promoted"] and result["version"] == "1"
        assert set(result["validation_auc"]) == {"xgboost", "logistic_regression"}
        assert result["algorithm"] == max(result["validation_auc"], key=result["validation_auc"].get)
        assert 0 < result["positives"]["test"] < result["rows"]["test"]


def test_runs_record_metrics_artifacts_data_versions_and_governance_tags(trained):
    import mlflow
    from mlflow.tracking import MlflowClient

    _, _, tracking_uri, results = trained
    mlflow.set_tracking_uri(tracking_uri)
    client = MlflowClient()
    for name, result in results.items():
        run = client.get_run(result["run_id"])
        for metric in ("test_auc", "test_accuracy", "test_precision", "test_recall", "test_f1"):
            assert metric in run.data.metrics
        # Calibrated on validation, kept only when it lowers the test Brier score.
        brier = {k: run.data.metrics[f"test_brier_{k}"] for k in ("uncalibrated", "calibrated")}
        kept = "calibrated" if run.data.params["calibration"] == "isotonic" else "uncalibrated"
        assert brier[kept] == min(brier.values()) == run.data.metrics["test_brier"] == result["test_brier"]
        assert result["calibration"] == run.data.params["calibration"]
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
            "reliability_curve.png",
            "calibration.json",
            "model_card.md",
        } <= artifacts
        card = mlflow.artifacts.load_text(f"runs:/{result['run_id']}/model_card.md")
        assert card.startswith(f"# {name} version {result['version']}\n")
        assert f"| AUC | {result['test_auc']:.3f} |" in card and "| sex: female |" in card
        champion = client.get_model_version_by_alias(name, CHAMPION)
        assert str(champion.version) == result["version"]


def test_champion_loads_by_alias_reads_its_declared_features_and_scores_every_patient(spark, trained):
    import mlflow

    lakehouse, as_of, tracking_uri, _ = trained
    mlflow.set_tracking_uri(tracking_uri)
    for name, spec in model_specs().items():
        model = mlflow.spark.load_model(f"models:/{name}@{CHAMPION}")
        assert scoring.model_inputs(model) == list(spec.features), name

    counts = scoring.run(spark, lakehouse=str(lakehouse), tracking_uri=tracking_uri, as_of=as_of)

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
    # Every score carries its 3 reasons: features of its model, largest contribution first.
    for name, spec in model_specs().items():
        for row in scores.filter(F.col("model_name") == name).select("reasons").collect():
            assert len(row.reasons) == 3 and {r.feature for r in row.reasons} <= set(spec.features), row
            sizes = [abs(r.contribution) for r in row.reasons]
            assert sizes == sorted(sizes, reverse=True)


def _train(spark, trained, **options) -> dict:
    lakehouse, as_of, tracking_uri, _ = trained
    return train_job.run(spark, lakehouse=str(lakehouse), tracking_uri=tracking_uri, as_of=as_of, **options)


def test_a_retrained_model_that_is_not_better_does_not_take_the_alias(spark, trained):
    """Forced onto the same inputs with a 1-day diabetes horizon: the diabetes model has too
    few labelled patients and is skipped, while the readmission model still trains."""
    import mlflow
    from mlflow.tracking import MlflowClient

    _, _, tracking_uri, first = trained
    again = _train(spark, trained, horizon_days=1, force=True)
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
    """The weekly fallback after no new batch run, through the command line: nothing to do,
    not a failure."""
    lakehouse, as_of, tracking_uri, _ = trained
    argv = ["--lakehouse", str(lakehouse), "--tracking-uri", tracking_uri, "--as-of", as_of.isoformat()]
    with pytest.raises(
        JobSkipped, match="no new gold since fhir_diabetes_risk, fhir_readmission_30d were last"
    ):
        train_models.main(argv, spark)


def test_the_command_line_takes_the_paging_flags_together(capsys):
    argv = ["--lakehouse", "/lh", "--tracking-uri", "sqlite:///m.db", "--as-of", "latest"]
    args = train_models.parse_args([*argv, "--page-after-retrain-skips", "3", "--summary-out", "/lh/s.json"])
    assert (args.as_of, args.page_after_retrain_skips, args.summary_out) == ("latest", 3, "/lh/s.json")
    assert args.models is None  # every declared model, read once the session has include/
    with pytest.raises(ModelSpecError, match="unknown model.*no_such_model"):
        train_job.run(
            None, lakehouse="/lh", tracking_uri="sqlite:///m.db", as_of="latest", models=["no_such_model"]
        )
    for extra, refusal in (
        (["--page-after-retrain-skips", "0", "--summary-out", "/lh/s.json"], "must be >= 1"),
        (["--page-after-retrain-skips", "2"], "needs --summary-out"),
    ):
        with pytest.raises(SystemExit) as refused:
            train_models.parse_args([*argv, *extra])
        assert refused.value.code == 2 and refusal in capsys.readouterr().err


def test_a_model_with_too_few_labels_is_skipped_logged_counted_and_paged(spark, trained, tmp_path):
    """A 1-day horizon leaves almost no labelled patients: the diabetes model is not
    retrained, its attempt is an MLflow run with the counts, its champion (from the
    fixture) counts one more run without retraining each time, and the run whose count
    reaches page_after_retrain_skips pages on-call in its job summary."""
    import mlflow
    from mlflow.tracking import MlflowClient

    _, _, tracking_uri, _ = trained
    client = MlflowClient(tracking_uri=tracking_uri)
    champion_before = client.get_model_version_by_alias(DIABETES_MODEL, CHAMPION).version

    def skips() -> int:
        return int(client.get_registered_model(DIABETES_MODEL).tags.get(registry.SKIPS_TAG, "0"))

    counted = [skips()]
    page_after = counted[0] + 2
    pages = []
    for attempt in range(2):
        summary = tmp_path / f"summary-{attempt}.json"
        with pytest.raises(
            JobSkipped, match="no model trained: fhir_diabetes_risk: not enough labelled rows"
        ):
            _train(
                spark,
                trained,
                models=[DIABETES_MODEL],
                horizon_days=1,
                force=True,
                page_after_retrain_skips=page_after,
                summary_out=str(summary),
            )
        counted.append(skips())
        pages.append(json.loads(summary.read_text())["pages"])
    assert counted[1:] == [counted[0] + 1, counted[0] + 2]
    assert pages[0] == []
    [page] = pages[1]
    assert page["subject"] == SUBJECT.format(model=DIABETES_MODEL)
    assert f"went {page_after} training runs in a row without retraining" in page["message"]
    assert "last reason: not enough labelled rows" in page["message"]
    assert client.get_model_version_by_alias(DIABETES_MODEL, CHAMPION).version == champion_before
    mlflow.set_tracking_uri(tracking_uri)
    [run, *_] = mlflow.search_runs(
        experiment_names=[DIABETES_MODEL], filter_string="tags.outcome = 'skipped'", output_format="list"
    )
    assert run.data.tags["skip_reason"].startswith("not enough labelled rows")
    assert int(run.data.params["test_rows"]) < 20
    assert registry.stale_champions_to_page(client, page_after) == []  # paged: marked so


def test_a_stale_champion_pages_once_per_episode(spark, trained, tmp_path):
    """Each run writes its summary, also when it has nothing new to train (JobSkipped): a
    champion pages once when it reaches N runs in a row without retraining, a later skip
    of the same episode pages nobody, a successful retraining ends the episode, and a
    model without a champion never pages."""
    from mlflow.tracking import MlflowClient

    _, _, tracking_uri, _ = trained
    client = MlflowClient(tracking_uri=tracking_uri)
    inputs = registry.last_training_inputs(client, DIABETES_MODEL)
    reason = "not enough labelled rows to train and evaluate (sizes {'test': 3})"
    summary = tmp_path / "summary.json"

    def paged() -> list[dict]:
        with pytest.raises(JobSkipped, match="no new gold since fhir_diabetes_risk were last trained"):
            _train(
                spark,
                trained,
                models=[DIABETES_MODEL],
                page_after_retrain_skips=2,
                summary_out=str(summary),
            )
        return json.loads(summary.read_text())["pages"]

    registry.record_trained(client, DIABETES_MODEL, inputs)
    assert registry.record_not_retrained(client, DIABETES_MODEL, inputs, reason) == 1
    assert paged() == []
    assert registry.record_not_retrained(client, DIABETES_MODEL, inputs, reason) == 2
    [page] = paged()
    assert page["subject"] == SUBJECT.format(model=DIABETES_MODEL)
    assert "went 2 training runs in a row without retraining" in page["message"]
    assert reason in page["message"]
    assert registry.record_not_retrained(client, DIABETES_MODEL, inputs, reason) == 3
    assert paged() == []  # the same episode pages once

    # A successful retraining ends the episode: the next one pages again.
    registry.record_trained(client, DIABETES_MODEL, inputs)
    assert client.get_registered_model(DIABETES_MODEL).tags[registry.SKIPS_TAG] == "0"
    for _ in range(2):
        registry.record_not_retrained(client, DIABETES_MODEL, inputs, reason)
    assert [p["subject"] for p in paged()] == [SUBJECT.format(model=DIABETES_MODEL)]

    without_champion = "fhir_model_without_champion"
    try:
        for _ in range(3):
            assert registry.record_not_retrained(client, without_champion, inputs, "too few rows") == 0
        assert registry.last_training_inputs(client, without_champion) == inputs
        assert registry.champion_version(client, without_champion) is None
        assert paged() == []
    finally:
        client.delete_registered_model(without_champion)


def test_scoring_uses_the_champions_there_are(spark, trained):
    """A model without a champion (never trained on enough rows) is not scored; the others are."""
    from mlflow.tracking import MlflowClient

    lakehouse, as_of, tracking_uri, _ = trained
    client = MlflowClient(tracking_uri=tracking_uri)
    champion = client.get_model_version_by_alias(READMISSION_MODEL, CHAMPION).version
    client.delete_registered_model_alias(READMISSION_MODEL, CHAMPION)
    argv = ["--lakehouse", str(lakehouse), "--tracking-uri", tracking_uri, "--as-of", "latest"]
    try:
        counts = score_risk.main(argv, spark)
    finally:
        client.set_registered_model_alias(READMISSION_MODEL, CHAMPION, champion)
    assert set(counts) == {DIABETES_MODEL} and counts[DIABETES_MODEL] > 0
    scores = read_table(spark, str(lakehouse / "gold" / "risk_scores")).filter(
        F.col("as_of_date") == F.lit(as_of)
    )
    assert {r.model_name for r in scores.select("model_name").distinct().collect()} == {DIABETES_MODEL}


def gold_on_three_days(spark, source: Path, as_of: dt.date, target: Path, shift: dict[int, tuple]) -> list:
    """The model tables of `source` as of `as_of`, copied to `target` for the three days
    after it; on day i, column shift[i][0] of chronic_disease_features is moved by shift[i][1]."""
    days = [as_of + dt.timedelta(days=offset) for offset in (1, 2, 3)]
    for table in ("chronic_disease_features", "readmission_features"):
        rows = read_table(spark, str(source / "gold" / table)).filter(F.col("as_of_date") == F.lit(as_of))
        for index, day in enumerate(days):
            copy = rows.withColumn("as_of_date", F.lit(day))
            if table == "chronic_disease_features" and index in shift:
                column, by = shift[index]
                copy = copy.withColumn(column, F.col(column) + F.lit(by))
            copy.write.format("delta").mode("append").partitionBy("as_of_date").save(
                str(target / "gold" / table)
            )
    return days


def test_a_shifted_feature_pages_on_call_once_per_drift_episode(
    spark, trained, tmp_path, monkeypatch, http_receiver
):
    """Three daily scoring runs, each paging what its summary says through the notifier
    factory to a local Slack webhook: the population the models were trained as of (no
    drift), then twice with every diabetes patient 40 years older. The first shifted run begins the
    episode and pages once, the second continues it and pages nobody; gold/model_monitoring
    records every measure of every run, the readmission model (unshifted) never drifts."""
    from fhir_pipeline import config
    from fhir_pipeline.job_summaries import page_job_summary

    source, as_of, tracking_uri, _ = trained
    lakehouse = tmp_path / "lakehouse"
    days = gold_on_three_days(spark, source, as_of, lakehouse, {1: ("age_years", 40), 2: ("age_years", 40)})
    monkeypatch.setenv("FHIR_LAKEHOUSE_URI", str(lakehouse))
    monkeypatch.setenv("FHIR__ALERTS__CHANNELS", "slack")
    monkeypatch.setenv(
        "AIRFLOW_CONN_SLACK_DEFAULT",
        json.dumps({"conn_type": "slackwebhook", "password": http_receiver.url("/services/T0/B0/X")}),
    )
    config.settings.cache_clear()
    paged = []
    try:
        for day in days:
            run_id = f"scheduled__{day}T04:00:00+00:00"
            summary = job_summary_path(str(lakehouse), "score_risk", run_id)
            argv = ["--lakehouse", str(lakehouse), "--tracking-uri", tracking_uri, "--as-of", str(day)]
            score_risk.main([*argv, "--summary-out", summary], spark)
            paged.append(page_job_summary("score_risk", run_id))
    finally:
        config.settings.cache_clear()

    monitored = read_table(spark, str(lakehouse / "gold" / "model_monitoring"))
    drifting = {
        (r.as_of_date, r.model_name, r.measure, r.drifting_since)
        for r in monitored.filter("drifted").collect()
    }
    psi = {(r.as_of_date, r.model_name, r.measure): r.psi for r in monitored.collect()}
    assert paged == [[], [DRIFT_SUBJECT.format(model=DIABETES_MODEL)], []], drifting
    [post] = http_receiver.received
    assert "POPULATION DRIFT fhir_diabetes_risk" in post["body"] and "age_years PSI" in post["body"]
    # Only the diabetes model drifts, by the shifted feature (and the scores it moves).
    assert {(d, m) for d, m, *_ in drifting} == {(days[1], DIABETES_MODEL), (days[2], DIABETES_MODEL)}
    assert {measure for _, _, measure, _ in drifting} <= {"age_years", "risk_score"}
    assert {(d, measure, since) for d, _, measure, since in drifting if measure == "age_years"} == {
        (days[1], "age_years", days[1]),
        (days[2], "age_years", days[1]),
    }
    measures = {name: len(spec.features) + 1 for name, spec in model_specs().items()}  # and the score
    per_run = monitored.groupBy("as_of_date", "model_name").count().collect()
    assert sorted((r.as_of_date, r.model_name, r["count"]) for r in per_run) == sorted(
        (day, name, count) for day in days for name, count in measures.items()
    )
    assert psi[(days[1], DIABETES_MODEL, "age_years")] > 1.0
    # Day 0 scores the population the models were trained as of: it has not moved at all.
    assert {v for (d, _, _), v in psi.items() if d == days[0]} == {0.0}


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

    _, _, tracking_uri, _ = trained
    mlflow.set_tracking_uri(tracking_uri)
    client = RecordingMLClient()
    target = AzureMLTarget("sub-id", "rg-fhir", "ws-fhir", "Standard_DS3_v2", 2)

    result = deploy_champion(client, MlflowClient(), DIABETES_MODEL, target)

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
