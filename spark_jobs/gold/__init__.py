"""Gold: clinical trends and ML features from silver, as of one date.

Every window is by date, never by row count: "_30d" means dated in
(cutoff - 30 days, cutoff] (SPEC §5), likewise _7d, _90d, _180d (also "6m"), _365d.
Only usable measurements count (inputs.usable_measurements).

Point in time: every feature of a row is computed from data dated on or before
that row's cutoff (the as-of date, or the discharge for readmission rows), and
never from current-state fields that may have been set later (a condition's
clinicalStatus, a medication's status): periods and dates decide what was active.
Dates are the local dates silver records (SPEC §5): an as-of cutoff includes what
is dated on or before the as-of date; only a discharge cutoff compares instants.

Modules: inputs (the silver rows gold reads), measures and spine (what is measured,
the windows and the spine contract), trends (the daily tables), measurement_features
and feature_blocks (pure feature blocks over a spine, each with its declared defaults),
chronic, adherence and readmission (the snapshot tables), tables (reading gold back)
and job (the gold_aggregate run that writes them all).
"""
