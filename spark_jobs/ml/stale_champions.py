"""On-call's news from training: a model whose champion keeps going without retraining
(too few labelled rows, run after run) pages once per episode.

train_models writes the pages into its job summary (fhir_contract.job_summary_path);
the training DAG's next task pages each one through the notifier factory. Each model
paged is then marked so, and the next skip pages nobody until a retraining succeeds
(registry.record_trained) and a new episode can begin.
"""

from __future__ import annotations

import logging

from pyspark.sql import SparkSession

from spark_jobs.lakehouse import write_job_summary
from spark_jobs.ml.registry import StaleChampion, mark_paged, stale_champions_to_page

log = logging.getLogger("fhir_lakehouse.stale_champions")

SUBJECT = "[FHIR pipeline] model not retrained: {model}"
MESSAGE = (
    "[FHIR pipeline] MODEL NOT RETRAINED {model}: its champion went {skips} training runs in a row "
    "without retraining (page_after_retrain_skips = {page_after}); last reason: {reason}. "
    "Scores still come from the current champion; MLflow runs tagged outcome=skipped give the counts."
)


def stale_champion_page(stale: StaleChampion, page_after: int) -> dict[str, str]:
    return {
        "subject": SUBJECT.format(model=stale.model),
        "message": MESSAGE.format(
            model=stale.model, skips=stale.skips, page_after=page_after, reason=stale.reason
        ),
    }


def write_stale_champion_pages(spark: SparkSession, client, page_after: int | None, path: str) -> list[str]:
    """Write the job summary at `path`: a page for each champion that has reached
    `page_after` runs in a row without retraining (none when `page_after` is None), then
    mark each paged. The models paged."""
    stale = stale_champions_to_page(client, page_after) if page_after is not None else []
    write_job_summary(spark, path, {"pages": [stale_champion_page(s, page_after) for s in stale]})
    # Marked only once the page is written: a failed write pages on the next run instead of never.
    for champion in stale:
        mark_paged(client, champion)
    paged = [champion.model for champion in stale]
    log.info("Models paged for going without retraining: %s", paged or "none")
    return paged
