"""On-call's view of model retraining: a model whose champion keeps going without
retraining (too few labelled rows, run after run) pages once per episode.

train_models counts the runs in a row on the registered model in MLflow
(spark_jobs/model_registry.py); this reads those counts on the Airflow side, pages
through the notifier factory, and marks the episode paged, so the next skip pages
nobody until a retraining succeeds and a new episode can begin.
"""

from __future__ import annotations

import logging

from fhir_pipeline.alerts import page
from fhir_pipeline.config import settings

log = logging.getLogger("fhir_pipeline.retraining")

SUBJECT = "[FHIR pipeline] model not retrained: {model}"
MESSAGE = (
    "[FHIR pipeline] MODEL NOT RETRAINED {model}: its champion went {skips} training runs in a row "
    "without retraining (page_after_retrain_skips = {page_after}); last reason: {reason}. "
    "Scores still come from the current champion; MLflow runs tagged outcome=skipped give the counts."
)


def page_stale_champions(tracking_uri: str) -> list[str]:
    """Page for each model that just reached ml.page_after_retrain_skips; the models paged."""
    from mlflow.tracking import MlflowClient

    from spark_jobs import model_registry

    page_after = settings()["ml"]["page_after_retrain_skips"]
    client = MlflowClient(tracking_uri=tracking_uri)
    paged = []
    for stale in model_registry.stale_champions_to_page(client, page_after):
        page(
            SUBJECT.format(model=stale.model),
            MESSAGE.format(
                model=stale.model,
                skips=stale.skips,
                page_after=page_after,
                reason=stale.reason,
            ),
        )
        model_registry.mark_paged(client, stale)
        paged.append(stale.model)
    log.info("Models paged for going without retraining: %s", paged or "none")
    return paged
