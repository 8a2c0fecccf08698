"""The charts a trained model's MLflow run keeps: its test ROC curve, its top features and
its reliability curve (test, with and without calibration)."""

from __future__ import annotations

from pathlib import Path


def save_charts(
    directory: Path,
    roc: list[tuple[float, float]],
    importances: dict[str, float],
    reliability: dict[str, list[dict]],
    title: str,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([p[0] for p in roc], [p[1] for p in roc], label="model")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance")
    ax.set(xlabel="False positive rate", ylabel="True positive rate", title=f"ROC (test) - {title}")
    ax.legend(loc="lower right")
    fig.savefig(directory / "roc_curve.png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    top = list(importances.items())[:20][::-1]
    fig, ax = plt.subplots(figsize=(7, 6))
    ax.barh([k for k, _ in top], [v for _, v in top])
    ax.set(xlabel="relative importance", title=f"Top features - {title}")
    fig.savefig(directory / "feature_importance.png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(5, 5))
    for name, points in reliability.items():
        ax.plot(
            [p["mean_score"] for p in points], [p["observed_rate"] for p in points], marker="o", label=name
        )
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
    ax.set(xlabel="mean predicted probability", ylabel="observed rate", title=f"Reliability (test) - {title}")
    ax.legend(loc="upper left")
    fig.savefig(directory / "reliability_curve.png", dpi=100, bbox_inches="tight")
    plt.close(fig)
