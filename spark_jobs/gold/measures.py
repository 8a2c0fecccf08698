"""The vitals and labs gold tracks, and the names their features carry."""

from __future__ import annotations

VITALS = (
    "heart_rate",
    "bp_systolic",
    "bp_diastolic",
    "temperature",
    "oxygen_saturation",
    "respiratory_rate",
)
LABS = ("glucose", "hba1c", "creatinine", "total_cholesterol", "ldl", "hdl", "hemoglobin")
FEATURE_LABS = (*LABS, "triglycerides")

# Feature names follow the seeds (avg_total_chol_90d).
SHORT_NAME = {"total_cholesterol": "total_chol", "oxygen_saturation": "spo2"}


def short(measure: str) -> str:
    return SHORT_NAME.get(measure, measure)
