"""Deterministic synthetic FHIR R4 generator for the landing zone.

CLI (from the repository root)::

    python -m tools.fhir_generator --patients N --seed S --out DIR --date YYYY-MM-DD
        [--history-days H (730)] [--workers W (min(2, CPUs))]
        [--bundle-fraction F (0.02)] [--gzip] [--overwrite]

writes ``DIR/daily_extract/YYYY-MM-DD/`` shaped like Synthea's bulk export:
``<Type>.<worker>.ndjson`` (``.ndjson.gz`` with ``--gzip``) for Patient, Encounter,
Observation, Condition, MedicationRequest and MedicationStatement, plus
``Bundle-transaction-<n>.json`` transaction Bundles that hold every resource of a
few patients (about F of them, five per Bundle; references inside use
``urn:uuid:``). Each resource is written exactly once. Output is byte-for-byte
reproducible for the same arguments (file layout depends on --workers). Files
appear under their final names only when the whole extract is complete; a date
folder that already holds files is refused unless ``--overwrite`` is given. In
Python: ``generate(patients, seed, out, date, ...)`` returns the counts.

Timeline model. Every patient lives on an absolute time line (2012-01-01 ..
2035-12-31) that depends only on (seed, patient index): a fixed birth date (ages
18-95 on 2025-07-01, skewed old), wellness visits every 90-180 days with a
personal phase, inpatient stays and emergency visits as Poisson processes,
pharmacy fills every 30 or 90 days. Each event draws its details and resource
ids from its own random stream keyed by (seed, patient, event kind, event
index). The extract for date D holds the events whose time (meta.lastUpdated:
end of the visit or stay, time of the fill) is in (D - H days, D] (D inclusive,
UTC), plus every Patient and the chronic conditions diagnosed by D, which are
re-sent in every extract unchanged. So the extracts of D and D+1 agree on every
shared resource, and ``--history-days 1`` is an incremental daily extract.

Clinical model. Per patient: BMI, smoking, adherence and an onset age for
diabetes, prediabetes, hypertension, hyperlipidemia, CKD, heart failure and COPD
drawn from Gompertz laws that rise with age, BMI and smoking (CKD and heart
failure also with diabetes and hypertension). HbA1c climbs over six years from
~5.3 through prediabetes (5.7-6.4) to 6.5 at diabetes onset and on to a personal
plateau (7-9.5); fasting glucose follows it (100-125 prediabetic, >= 126
diabetic). Hypertension brings 140-170/90-105 mmHg, hyperlipidemia LDL >= 160
and total cholesterol >= 240, CKD creatinine 1.5-2.8 mg/dL, heart failure and
COPD faster hearts and lower SpO2. A condition is diagnosed (a problem-list
Condition) at the first visit after onset, a visit with labs when labs define
it, and treated from there (metformin, lisinopril or amlodipine, atorvastatin,
furosemide, fluticasone/salmeterol): an active MedicationRequest renewed at
every visit and an active MedicationStatement per pharmacy fill, fills skipped
and late in proportion to the patient's adherence (days covered ~0.3-1.0).
Treatment pulls the values down a little. At each later visit a drug is stopped
with probability 1% (stopped request and statement; lisinopril is switched to
amlodipine). Visits record vital signs every time (BP as LOINC 55284-4 or
85354-9, heart rate, respiratory rate, temperature, SpO2, weight, height, BMI,
smoking status) and labs about every other time (HbA1c, glucose in three
codings including mmol/L, creatinine, lipids, hemoglobin), some with reference
ranges and interpretations; ~0.5% of measurements are entered-in-error or
amended and ~1% have a dataAbsentReason instead of a value. Admissions come at
a rate that rises with age and comorbidity; stays last 1-12 days (longer when
older and sicker) with a reason, an encounter-diagnosis Condition, arrival and
discharge vitals, labs and a completed inpatient order. After each discharge
the patient is readmitted 1-29 days later with probability sigmoid(-6.1 +
0.045 (age - 65) + 0.6 diagnosed comorbidities + 0.8 min(admissions in the
prior year, 2) + 0.12 length of stay in days): about 21% of discharges, and the
true score ranks them with AUC ~0.87. Other admissions come at least 32 days
after a discharge, so the 30-day label is the same from timestamps or dates.
"""

from .output import generate

__all__ = ["generate"]
