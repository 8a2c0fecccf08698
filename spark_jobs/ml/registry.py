"""What the MLflow model registry says about each risk model beyond its versions: its
champion, the inputs it was last trained on, and how many runs in a row a model with a
champion could not be retrained (kept as registered-model tags).

train_models writes these tags and, at the end of each run, pages (stale_champions)
once per episode of failed retraining.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

CHAMPION = "champion"
INPUTS_TAG = "last_training_inputs"
SKIPS_TAG = "retrain_skips_in_a_row"
SKIP_REASON_TAG = "retrain_skip_reason"
PAGED_TAG = "retrain_skips_paged"
# What MLflow answers for a registered model, or an alias, that does not exist.
NOT_FOUND = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")


def champion_version(client, name: str):
    """The `@champion` ModelVersion of a registered model, or None when it has none yet."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException as exc:
        if exc.error_code in NOT_FOUND:
            return None
        raise


def _tags(client, name: str) -> dict[str, str]:
    from mlflow.exceptions import MlflowException

    try:
        return dict(client.get_registered_model(name).tags)
    except MlflowException as exc:
        if exc.error_code in NOT_FOUND:
            return {}
        raise


def last_training_inputs(client, name: str) -> dict[str, str] | None:
    """The inputs (as-of date, table versions) of the model's last training attempt."""
    recorded = _tags(client, name).get(INPUTS_TAG)
    return json.loads(recorded) if recorded else None


def record_trained(client, name: str, inputs: dict[str, str]) -> None:
    """A version was trained on `inputs`: any episode of failed retraining is over."""
    client.set_registered_model_tag(name, INPUTS_TAG, json.dumps(inputs, sort_keys=True))
    client.set_registered_model_tag(name, SKIPS_TAG, "0")
    tags = _tags(client, name)
    for tag in (SKIP_REASON_TAG, PAGED_TAG):
        if tag in tags:
            client.delete_registered_model_tag(name, tag)


def record_not_retrained(client, name: str, inputs: dict[str, str], reason: str) -> int:
    """The model could not be trained on `inputs`; returns the runs in a row its champion
    went without retraining (0 while it has no champion: nothing is going stale)."""
    _ensure_registered(client, name)
    client.set_registered_model_tag(name, INPUTS_TAG, json.dumps(inputs, sort_keys=True))
    if champion_version(client, name) is None:
        return 0
    skips = int(_tags(client, name).get(SKIPS_TAG, "0")) + 1
    client.set_registered_model_tag(name, SKIPS_TAG, str(skips))
    client.set_registered_model_tag(name, SKIP_REASON_TAG, reason[:5000])
    return skips


def _ensure_registered(client, name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise


@dataclass(frozen=True)
class StaleChampion:
    model: str
    skips: int
    reason: str


def stale_champions_to_page(client, page_after: int) -> list[StaleChampion]:
    """Models whose champion has gone `page_after` or more runs in a row without
    retraining and whose episode has not paged yet."""
    stale = []
    for model in client.search_registered_models():
        tags = dict(model.tags)
        skips = int(tags.get(SKIPS_TAG, "0"))
        if skips >= page_after and PAGED_TAG not in tags:
            stale.append(StaleChampion(model.name, skips, tags.get(SKIP_REASON_TAG, "")))
    return stale


def mark_paged(client, stale: StaleChampion) -> None:
    client.set_registered_model_tag(stale.model, PAGED_TAG, str(stale.skips))
