"""The charts a trained model's MLflow run keeps: its test ROC curve and its top features."""

from __future__ import annotations

from pathlib import Path


def save_charts(
    directory: Path, roc: list[tuple[float, float]], importances: dict[str, float], title: str
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
