"""Drift: how far the population a model scores has moved since the model was trained.

Training saves the reference with the model version (REFERENCE_ARTIFACT, in its MLflow
run, since gold is rewritten and vacuumed): the population the model scores as of its
training date (datasets.Dataset.population), for each feature and for the score the
decile edges and the share of its rows in each bin, missing values being a bin of their
own. Scoring bins the rows it scores on the same edges and compares the shares by the
population stability index,
PSI = sum over bins of (current - reference) * ln(current / reference), each share
floored at SHARE_FLOOR. A measure drifts when its PSI reaches the threshold (by
convention 0.1 is a moderate shift and 0.25 a major one) and both populations hold at
least min_rows rows (PSI is noisy on fewer). A model drifts while any of its measures
does: the run that finds it drifting after a run that did not starts an episode, and
only that run pages on-call (starts_episode, drift_page).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from functools import reduce
from operator import add

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

REFERENCE_ARTIFACT = "drift_reference.json"
BINS = 10
QUANTILE_ERROR = 0.001
SHARE_FLOOR = 1e-4
SCORE_MEASURE = "risk_score"  # the score's measure, named as its gold/risk_scores column

SUBJECT = "[FHIR pipeline] population drift: {model}"
MESSAGE = (
    "[FHIR pipeline] POPULATION DRIFT {model} v{version} as of {as_of}: the population scored has "
    "moved from the one it scored when it was trained ({measures}; PSI threshold {threshold}). Scores are "
    "still written to gold/risk_scores; check the feeds behind these measures, then retrain. "
    "gold/model_monitoring holds every measure's PSI per run; this episode pages once."
)


def bin_index(value: Column, edges: list[float]) -> Column:
    """The bin of `value` on sorted `edges`: how many edges it exceeds (0..len(edges)), -1 when missing."""
    above = reduce(add, [(value > F.lit(edge)).cast("int") for edge in edges], F.lit(0))
    return F.when(value.isNull() | F.isnan(value), F.lit(-1)).otherwise(above)


def bin_counts(frame: DataFrame, edges: dict[str, list[float]]) -> dict[str, dict[int, int]]:
    """Rows per bin of each column on its edges, counted on the executors in one pass."""
    cells = F.explode(
        F.array(
            *[
                F.struct(F.lit(column).alias("measure"), bin_index(F.col(column), column_edges).alias("bin"))
                for column, column_edges in edges.items()
            ]
        )
    )
    counts: dict[str, dict[int, int]] = {column: {} for column in edges}
    for row in frame.select(cells.alias("cell")).groupBy("cell.measure", "cell.bin").count().collect():
        counts[row.measure][row.bin] = row["count"]
    return counts


def shares(counts: dict[int, int], edge_count: int, rows: int) -> dict:
    return {
        "missing": counts.get(-1, 0) / rows,
        "bins": [counts.get(index, 0) / rows for index in range(edge_count + 1)],
    }


def measured(predictions: DataFrame, features: list[str]) -> DataFrame:
    """What drift is measured on: a model's features and its score (as SCORE_MEASURE)."""
    return predictions.select(*features, F.col("score").alias(SCORE_MEASURE))


def reference_distribution(frame: DataFrame) -> dict:
    """The decile edges of each column of `frame` (non-empty) and its shares per bin."""
    columns = frame.columns
    rows = frame.count()
    probabilities = [index / BINS for index in range(1, BINS)]
    quantiles = frame.approxQuantile(columns, probabilities, QUANTILE_ERROR)
    edges = {column: sorted(set(values)) for column, values in zip(columns, quantiles, strict=True)}
    counts = bin_counts(frame, edges)
    return {
        "rows": rows,
        "bins": BINS,
        "measures": {
            column: {"edges": edges[column], **shares(counts[column], len(edges[column]), rows)}
            for column in columns
        },
    }


def psi(reference: dict, current: dict) -> float:
    """Population stability index of `current` shares against `reference` shares (same edges)."""
    expected = [reference["missing"], *reference["bins"]]
    actual = [current["missing"], *current["bins"]]
    return sum(
        (a - e) * math.log(a / e)
        for a, e in (
            (max(a, SHARE_FLOOR), max(e, SHARE_FLOOR)) for a, e in zip(actual, expected, strict=True)
        )
    )


def population_psi(frame: DataFrame, reference: dict) -> tuple[int, dict[str, float]]:
    """(rows, PSI per measure) of the rows in `frame` against the reference's measures."""
    rows = frame.count()
    edges = {measure: spec["edges"] for measure, spec in reference["measures"].items()}
    counts = bin_counts(frame, edges)
    return rows, {
        measure: psi(spec, shares(counts[measure], len(spec["edges"]), max(rows, 1)))
        for measure, spec in reference["measures"].items()
    }


@dataclass(frozen=True)
class DriftCheck:
    """One measure of one model in one scoring run."""

    measure: str
    psi: float
    drifted: bool
    drifting_since: dt.date | None


def drift_checks(
    psis: dict[str, float],
    previous: dict[str, dt.date],
    *,
    threshold: float,
    judged: bool,
    as_of: dt.date,
) -> list[DriftCheck]:
    """Each measure's check. `previous` maps the measures the model's previous run found
    drifting to the day their drift began; `judged` says whether both populations were
    large enough to tell."""
    checks = []
    for measure, value in psis.items():
        drifted = judged and value >= threshold
        since = (previous.get(measure) or as_of) if drifted else None
        checks.append(DriftCheck(measure, value, drifted, since))
    return checks


def starts_episode(checks: list[DriftCheck], previous: dict[str, dt.date]) -> bool:
    """The model drifts now and did not in its previous run."""
    return any(c.drifted for c in checks) and not previous


def drift_page(model: str, version: str, as_of: dt.date, checks: list[DriftCheck], threshold: float) -> dict:
    drifted = sorted((c for c in checks if c.drifted), key=lambda c: -c.psi)
    measures = ", ".join(f"{c.measure} PSI {c.psi:.2f}" for c in drifted)
    return {
        "subject": SUBJECT.format(model=model),
        "message": MESSAGE.format(
            model=model, version=version, as_of=as_of, measures=measures, threshold=threshold
        ),
    }
