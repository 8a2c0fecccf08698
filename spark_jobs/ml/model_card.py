"""The model card each trained version carries as an MLflow artifact (model_card.md):
what it was trained on, for whom, how it does on the test split with 95 % bootstrap
intervals, the same by sex and age bucket, its calibration, top features and limits.

Metrics are computed on the collected test rows (each with `score`, LABEL and the
subgroup columns), on the driver: the test split is a fifth of one hospital's patients.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from spark_jobs.ml.calibration import brier_score
from spark_jobs.ml.labels import LABEL

BOOTSTRAP_DRAWS = 200
# Below this many rows, or this many of either outcome, a subgroup's metrics are not shown:
# an AUC over one positive says nothing.
MIN_SUBGROUP_ROWS = 30
MIN_SUBGROUP_OUTCOMES = 5
AGE_BUCKETS = ((0, 40, "under 40"), (40, 65, "40-64"), (65, 200, "65 and over"))
# The feature columns subgroups are read from, when a model has them.
SUBGROUP_COLUMNS = ("is_male", "age_years")


def rows_auc(rows) -> float | None:
    """Area under the ROC curve of (score, LABEL) rows: the chance a random positive
    scores above a random negative, ties counting half; None without both outcomes."""
    ordered = sorted(rows, key=lambda r: r.score)
    positives = sum(1 for r in ordered if r[LABEL] == 1)
    negatives = len(ordered) - positives
    if not positives or not negatives:
        return None
    rank_sum, index = 0.0, 0
    while index < len(ordered):
        end = index
        while end + 1 < len(ordered) and ordered[end + 1].score == ordered[index].score:
            end += 1
        mid_rank = (index + end) / 2 + 1  # tied scores share their mean rank
        rank_sum += mid_rank * sum(1 for r in ordered[index : end + 1] if r[LABEL] == 1)
        index = end + 1
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def bootstrap_interval(
    rows: Sequence, metric: Callable[[Sequence], float | None], seed: int, draws: int = BOOTSTRAP_DRAWS
) -> tuple[float, float] | None:
    """The 2.5th and 97.5th percentiles of `metric` over resamples of `rows` with replacement."""
    generator = random.Random(seed)
    values = sorted(
        value
        for value in (metric(generator.choices(rows, k=len(rows))) for _ in range(draws))
        if value is not None
    )
    if not values:
        return None
    return values[int(0.025 * (len(values) - 1))], values[int(0.975 * (len(values) - 1))]


def age_bucket(age: float | None) -> str:
    for low, high, name in AGE_BUCKETS:
        if age is not None and low <= age < high:
            return name
    return "unknown"


def subgroups(rows: Sequence) -> dict[str, list]:
    """Rows by sex (is_male) and by age bucket (age_years), where the rows carry them."""
    groups: dict[str, list] = {}
    for r in rows:
        fields = r.asDict()
        if "is_male" in fields:
            sex = {1.0: "male", 0.0: "female"}.get(fields["is_male"], "unknown")
            groups.setdefault(f"sex: {sex}", []).append(r)
        if "age_years" in fields:
            groups.setdefault(f"age: {age_bucket(fields['age_years'])}", []).append(r)
    return dict(sorted(groups.items()))


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _interval(interval: tuple[float, float] | None) -> str:
    return "n/a" if interval is None else f"{interval[0]:.3f}-{interval[1]:.3f}"


def model_card(
    *,
    model_name: str,
    version: str,
    as_of: str,
    label_definition: str,
    algorithm: str,
    sizes: dict[str, int],
    positives: dict[str, int],
    data_versions: dict[str, int],
    test_rows: Sequence,
    threshold: float,
    calibration: str,
    brier: dict[str, float],
    importances: dict[str, float],
    seed: int,
) -> str:
    """The card as Markdown."""
    auc = rows_auc(test_rows)
    lines = [
        f"# {model_name} version {version}",
        "",
        f"- Trained on gold as of {as_of}; algorithm {algorithm}; decision threshold {threshold}.",
        "- Data versions (Delta): " + ", ".join(f"{k} v{v}" for k, v in sorted(data_versions.items())) + ".",
        f"- Label: {label_definition}.",
        "- Population (rows / positives): "
        + ", ".join(f"{k} {sizes[k]} / {positives[k]}" for k in ("train", "validation", "test"))
        + "; split 60/20/20 by patient.",
        "",
        f"## Test metrics (95 % intervals: {BOOTSTRAP_DRAWS} bootstrap resamples of the test rows)",
        "",
        "| metric | value | 95 % interval |",
        "|---|---|---|",
        f"| AUC | {_number(auc)} | {_interval(bootstrap_interval(test_rows, rows_auc, seed))} |",
        f"| Brier score | {_number(brier_score(test_rows))} | "
        f"{_interval(bootstrap_interval(test_rows, brier_score, seed))} |",
        "",
        "## By subgroup (test)",
        "",
        "| subgroup | rows | positives | AUC | Brier score |",
        "|---|---|---|---|---|",
    ]
    for name, members in subgroups(test_rows).items():
        cases = sum(1 for r in members if r[LABEL] == 1)
        shown = (
            len(members) >= MIN_SUBGROUP_ROWS and min(cases, len(members) - cases) >= MIN_SUBGROUP_OUTCOMES
        )
        auc_text = _number(rows_auc(members)) if shown else "too few"
        brier_text = _number(brier_score(members)) if shown else "too few"
        lines.append(f"| {name} | {len(members)} | {cases} | {auc_text} | {brier_text} |")
    lines += [
        "",
        "## Calibration",
        "",
        f"Kept: {calibration}. Test Brier score uncalibrated {brier['uncalibrated']:.4f}, "
        f"calibrated (isotonic, fitted on validation) {brier['calibrated']:.4f}. "
        "Reliability curve: reliability_curve.png, calibration.json.",
        "",
        "## Top features (share of importance)",
        "",
        *[f"- {feature}: {share:.3f}" for feature, share in list(importances.items())[:10]],
        "",
        "## Known limits",
        "",
        f"- Subgroups with fewer than {MIN_SUBGROUP_ROWS} test rows, or fewer than {MIN_SUBGROUP_OUTCOMES} "
        "of either outcome, show no metrics.",
        "- The intervals are wide when the test split holds few positives.",
        "- One hospital's population as of one date; not validated on another site or period.",
        "- The label is what the records show: care elsewhere, or a diagnosis never coded, is a negative.",
        "- Scores are probabilities for triage and trends, not a diagnosis.",
    ]
    return "\n".join(lines) + "\n"
