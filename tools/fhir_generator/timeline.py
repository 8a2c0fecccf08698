"""Latent clinical model and absolute timeline of one synthetic patient.

Everything here is a pure function of (seed, patient index): the extract date
only decides how far the timeline is unrolled (``horizon``) and which events
are written. Times are integer seconds since the Unix epoch, UTC.
"""

from __future__ import annotations

import bisect
import hashlib
import math
import random
from datetime import date

from . import codes

DAY = 86400
YEAR = 365.25 * DAY
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


def epoch_seconds(day: date) -> int:
    return (day.toordinal() - _EPOCH_ORDINAL) * DAY


# Every timeline starts here: patients have no events before it, whatever the extract date.
SPAN_START = epoch_seconds(date(2012, 1, 1))
SPAN_END = epoch_seconds(date(2036, 1, 1)) - 1
# Ages 18-95 are drawn at this date; birth dates are fixed, so ages grow with the extract date.
AGE_REFERENCE = epoch_seconds(date(2025, 7, 1))

# Random stream kinds. Each stream is keyed by (seed, patient index, kind, index), so an
# event's details never depend on how many other events were generated before it.
PATIENT = 1
DEMOGRAPHICS = 2
VISIT_SCHEDULE = 3
ADMISSION_SCHEDULE = 4
EMERGENCY_SCHEDULE = 5
CONDITION = 6
VISIT = 7
ADMISSION = 8
EMERGENCY_VISIT = 9
FILL = 10
BUNDLE = 11

MAX_SEED = 2**63 - 1
MAX_PATIENTS = 2**40


def stream_key(seed: int, patient: int, kind: int, index: int) -> int:
    return (seed << 96) | (patient << 48) | (kind << 40) | index


def stream(seed: int, patient: int, kind: int, index: int = 0) -> random.Random:
    return random.Random(stream_key(seed, patient, kind, index))


def keyed_draws(seed: int, patient: int, kind: int, index: int) -> tuple[int, float, float]:
    """128 random bits and two uniforms for a key, without seeding a Mersenne Twister.

    Used for the many one-resource events (pharmacy fills), where seeding
    random.Random would cost as much as building the resource.
    """
    digest = hashlib.blake2b(
        stream_key(seed, patient, kind, index).to_bytes(24, "little"), digest_size=32
    ).digest()
    return (
        int.from_bytes(digest[:16], "little"),
        int.from_bytes(digest[16:24], "little") / 2**64,
        int.from_bytes(digest[24:], "little") / 2**64,
    )


_UUID_CLEAR = ~((0xF << 76) | (0x3 << 62)) & (2**128 - 1)
_UUID_SET = (0x4 << 76) | (0x2 << 62)


def uuid4(bits: int) -> str:
    """Format 128 random bits as a version-4 UUID string (faster than uuid.UUID)."""
    h = ((bits & _UUID_CLEAR) | _UUID_SET).to_bytes(16, "big").hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


_CLOCK = [f"T{h:02d}:{m:02d}:{s:02d}" for h in range(24) for m in range(60) for s in range(60)]
_DAYS: dict[int, str] = {}


def day_string(day_number: int) -> str:
    text = _DAYS.get(day_number)
    if text is None:
        text = _DAYS[day_number] = date.fromordinal(_EPOCH_ORDINAL + day_number).isoformat()
    return text


def timestamp(t: int) -> str:
    """'2010-01-09T19:04:32+00:00', Synthea's format."""
    day, second = divmod(t, DAY)
    return f"{day_string(day)}{_CLOCK[second]}+00:00"


def timestamp_ms(t: int, millis: int) -> str:
    day, second = divmod(t, DAY)
    return f"{day_string(day)}{_CLOCK[second]}.{millis:03d}+00:00"


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def ramp(t: float, t0: float, t1: float, v0: float, v1: float) -> float:
    if t <= t0:
        return v0
    if t >= t1:
        return v1
    return v0 + (v1 - v0) * (t - t0) / (t1 - t0)


# Chronic conditions that count as comorbidities (admission rate, readmission risk).
DIABETES, HYPERTENSION, HYPERLIPIDEMIA, CKD, HEART_FAILURE, COPD = range(6)
PREDIABETES, OBESITY = 6, 7
CHRONIC = (DIABETES, HYPERTENSION, HYPERLIPIDEMIA, CKD, HEART_FAILURE, COPD)
# Conditions diagnosed from labs wait for a visit where labs are drawn.
_LAB_DIAGNOSED = {DIABETES, PREDIABETES, HYPERLIPIDEMIA, CKD}

# Onset follows a Gompertz law: P(onset by age a) = 1 - exp(-exp(c + extra + slope * (a - 60))),
# where extra carries BMI, smoking and other conditions; inverting it at a uniform draw gives
# the onset age. Few onsets before 30, most of the risk late in life.
_ONSET_LOG_HAZARD_AT_60 = {
    DIABETES: -2.1,
    PREDIABETES: -1.2,
    HYPERTENSION: -0.6,
    HYPERLIPIDEMIA: -0.9,
    CKD: -3.6,
    HEART_FAILURE: -4.6,
    COPD: -4.2,
}
_ONSET_SLOPE = {
    DIABETES: 0.06,
    PREDIABETES: 0.03,
    HYPERTENSION: 0.045,
    HYPERLIPIDEMIA: 0.04,
    CKD: 0.07,
    HEART_FAILURE: 0.08,
    COPD: 0.05,
}
_ONSET_BMI_SLOPE = {
    DIABETES: 0.14,
    PREDIABETES: 0.08,
    HYPERTENSION: 0.07,
    HYPERLIPIDEMIA: 0.05,
    CKD: 0.03,
    HEART_FAILURE: 0.04,
    COPD: 0.0,
}
_TREATMENT_RATE = {
    DIABETES: 0.85,
    HYPERTENSION: 0.85,
    HYPERLIPIDEMIA: 0.75,
    HEART_FAILURE: 0.9,
    COPD: 0.85,
}
_LOG_KEEP_DRUG = math.log(1.0 - 0.01)

NEVER, FORMER, CURRENT = 0, 1, 2

# Readmission within 30 days of a discharge: logistic in what is known at discharge.
READMISSION_INTERCEPT = -6.1
READMISSION_AGE = 0.045
READMISSION_COMORBIDITY = 0.6
READMISSION_PRIOR_ADMISSIONS = 0.8
READMISSION_PRIOR_CAP = 2
READMISSION_LOS = 0.12
# Readmissions start 1-29 days after discharge, other admissions at least 32 days after, so the
# 30-day label is the same whether it is computed from timestamps or from calendar dates.
READMISSION_MAX_GAP_DAYS = 29
NON_READMISSION_MIN_GAP_DAYS = 32


class Course:
    """A chronic medication course: started at a visit, renewed at every visit, maybe
    discontinued (switched) at a later one. Fills happen at the pharmacy in between."""

    __slots__ = ("index", "drug", "condition", "start_visit", "end_visit", "start", "end")

    def __init__(self, index, drug, condition, start_visit, start):
        self.index = index
        self.drug = drug
        self.condition = condition
        self.start_visit = start_visit
        self.start = start
        self.end_visit: int | None = None
        self.end: int | None = None


class Admission:
    __slots__ = ("index", "admit", "discharge")

    def __init__(self, index, admit, discharge):
        self.index = index
        self.admit = admit
        self.discharge = discharge


class PatientTimeline:
    """Latent risks and the absolute schedule of one patient, unrolled up to ``horizon``.

    Events after the horizon are not computed; those before it never depend on it.
    """

    def __init__(self, seed: int, index: int, horizon: int):
        self.seed = seed
        self.index = index
        rng = stream(seed, index, PATIENT)
        self.id = uuid4(rng.getrandbits(128))
        self.female = rng.random() < 0.52
        # Beta(2.2, 1.5) on 18..95 leans the population towards older adults (mean ~64).
        age_at_reference = 18 + 77 * rng.betavariate(2.2, 1.5)
        self.birth = int(AGE_REFERENCE - age_at_reference * YEAR) // DAY * DAY
        self.age_at_reference = age_at_reference
        self.bmi0 = min(55.0, max(17.0, rng.lognormvariate(math.log(27.5), 0.18)))
        self.bmi_slope = rng.gauss(0.0, 0.25)
        smoking = rng.random()
        self.smoking = NEVER if smoking < 0.55 else FORMER if smoking < 0.85 else CURRENT
        # Proportion of days covered by refills, 0.3..1.0, most patients fairly adherent.
        self.adherence = 0.3 + 0.7 * rng.betavariate(2.5, 1.1)
        self.supply_days = 90 if rng.random() < 0.15 + 0.5 * (self.adherence - 0.3) else 30
        self.fill_jitter_days = 2 + int(12 * (1.0 - self.adherence))

        onset_draws = [rng.random() for _ in range(7)]
        self.a1c_base = min(5.55, max(4.9, rng.gauss(5.3, 0.12)))
        self.a1c_plateau = rng.uniform(7.0, 9.5)
        self.prediabetes_plateau = rng.uniform(5.8, 6.35)
        self.systolic_offset = rng.gauss(0.0, 6.0)
        self.diastolic_offset = rng.gauss(0.0, 4.0)
        self.systolic_hypertensive = rng.uniform(142.0, 168.0)
        self.diastolic_hypertensive = rng.uniform(90.0, 104.0)
        self.ldl_base = min(150.0, max(60.0, rng.gauss(110.0, 18.0)))
        self.ldl_high = rng.uniform(168.0, 215.0)
        self.hdl_base = rng.gauss(58.0 if self.female else 48.0, 8.0)
        self.triglycerides_base = rng.lognormvariate(math.log(115.0), 0.25)
        self.creatinine_base = rng.gauss(0.75 if self.female else 0.95, 0.1)
        self.creatinine_ckd = rng.uniform(1.5, 2.8)
        self.hemoglobin_base = rng.gauss(13.4 if self.female else 14.8, 0.8)
        self.heart_rate_base = rng.gauss(72.0, 6.0)
        self.spo2_base = rng.gauss(97.6, 0.7)
        self.height = rng.gauss(162.0 if self.female else 176.0, 6.5)
        treated = {condition: rng.random() < rate for condition, rate in _TREATMENT_RATE.items()}
        first_antihypertensive = codes.LISINOPRIL if rng.random() < 0.75 else codes.AMLODIPINE
        # A drug is stopped (side effects) at each later visit with probability 1%; for
        # lisinopril (ACE-inhibitor cough) that means a switch to amlodipine.
        stop_after_visits = {
            condition: 1 + int(math.log(1.0 - rng.random()) / _LOG_KEEP_DRUG) for condition in _TREATMENT_RATE
        }

        self.onset = self._onsets(onset_draws)
        self.adult = max(SPAN_START, self.birth + int(18 * YEAR))
        self._schedule_visits(horizon)
        self.recorded = self._diagnoses()
        self.courses = self._courses(treated, first_antihypertensive, stop_after_visits)
        self._true_chronic = sorted(self.onset[c] for c in CHRONIC if self.onset[c] is not None)
        self._recorded_chronic = sorted(
            self.visit_start[self.recorded[c]] for c in CHRONIC if self.recorded[c] is not None
        )
        self.admissions = self._schedule_admissions(horizon)
        self.emergency_visits = self._schedule_emergency_visits(horizon)

    # --- latent state --------------------------------------------------------------

    def age(self, t: float) -> float:
        return (t - self.birth) / YEAR

    def _onset_time(self, condition: int, draw: float, extra: float) -> int | None:
        log_hazard = math.log(-math.log(1.0 - draw)) if draw > 0.0 else -50.0
        onset_age = 60.0 + (log_hazard - _ONSET_LOG_HAZARD_AT_60[condition] - extra) / _ONSET_SLOPE[condition]
        if onset_age > 110.0:
            return None
        return self.birth + int(max(onset_age, 18.0) * YEAR)

    def _onsets(self, draws: list[float]) -> list[int | None]:
        draw = dict(
            zip(
                (DIABETES, HYPERTENSION, HYPERLIPIDEMIA, CKD, HEART_FAILURE, COPD, PREDIABETES),
                draws,
                strict=True,
            )
        )
        bmi_excess = self.bmi0 - 28.0
        current = self.smoking == CURRENT
        onset: list[int | None] = [None] * 8
        for condition in (DIABETES, PREDIABETES, HYPERTENSION, HYPERLIPIDEMIA):
            extra = _ONSET_BMI_SLOPE[condition] * bmi_excess
            if condition == HYPERTENSION and current:
                extra += 0.3
            onset[condition] = self._onset_time(condition, draw[condition], extra)
        diabetic = onset[DIABETES] is not None
        hypertensive = onset[HYPERTENSION] is not None
        onset[CKD] = self._onset_time(
            CKD, draw[CKD], _ONSET_BMI_SLOPE[CKD] * bmi_excess + 0.9 * diabetic + 0.6 * hypertensive
        )
        onset[HEART_FAILURE] = self._onset_time(
            HEART_FAILURE,
            draw[HEART_FAILURE],
            _ONSET_BMI_SLOPE[HEART_FAILURE] * bmi_excess
            + 0.6 * hypertensive
            + 0.4 * diabetic
            + 0.5 * current,
        )
        onset[COPD] = self._onset_time(
            COPD, draw[COPD], 2.2 if current else 1.4 if self.smoking == FORMER else 0.0
        )
        if diabetic:
            # Future diabetics pass through prediabetes on their own HbA1c path (see hba1c).
            onset[PREDIABETES] = None
        return onset

    def _treatment(self, condition: int, t: int) -> float:
        """0..1: how much of a drug's effect is present at t (adherence, 3-month ramp-up)."""
        for course in self.courses:
            if course.condition == condition and course.start < t and (course.end is None or t < course.end):
                return self.adherence * min(1.0, (t - course.start) / (0.25 * YEAR))
        return 0.0

    def hba1c(self, t: int) -> float:
        """True HbA1c: ~5.3 at baseline, rising for six years to 6.5 at diabetes onset, then
        towards a personal plateau; prediabetes-only patients level off below 6.5."""
        onset = self.onset[DIABETES]
        if onset is not None:
            if t < onset:
                return ramp(t, onset - 6 * YEAR, onset, self.a1c_base, 6.5)
            value = 6.5 + (self.a1c_plateau - 6.5) * min(1.0, (t - onset) / (3 * YEAR))
            return value - 0.35 * self._treatment(DIABETES, t)
        onset = self.onset[PREDIABETES]
        if onset is not None:
            return ramp(t, onset, onset + 4 * YEAR, self.a1c_base, self.prediabetes_plateau)
        return self.a1c_base

    def condition_onset(self, condition: int) -> int | None:
        """Onset written on the Condition: when the defining measure crossed its threshold."""
        if condition == PREDIABETES:
            return self._prediabetes_crossing()
        return self.onset[condition]

    def _prediabetes_crossing(self) -> int | None:
        """When HbA1c first reaches 5.7."""
        onset = self.onset[DIABETES]
        if onset is not None:
            return int(onset - 6 * YEAR * (6.5 - 5.7) / (6.5 - self.a1c_base))
        onset = self.onset[PREDIABETES]
        if onset is not None:
            return int(onset + 4 * YEAR * (5.7 - self.a1c_base) / (self.prediabetes_plateau - self.a1c_base))
        return None

    def fasting_glucose(self, a1c: float) -> float:
        # ~92 mg/dL at HbA1c 5.3, 100 at 5.7, 126 at 6.5.
        return 95.0 + 28.0 * (a1c - 5.4)

    def blood_pressure(self, t: int) -> tuple[float, float]:
        age = self.age(t)
        systolic = min(136.0, 112.0 + 0.3 * (age - 40.0) + self.systolic_offset)
        diastolic = min(86.0, 74.0 + 0.1 * (age - 40.0) + self.diastolic_offset)
        onset = self.onset[HYPERTENSION]
        if onset is None or t < onset - 3 * YEAR:
            return systolic, diastolic
        if t < onset:
            return (
                ramp(t, onset - 3 * YEAR, onset, systolic, 140.0),
                ramp(t, onset - 3 * YEAR, onset, diastolic, 90.0),
            )
        treated = self._treatment(HYPERTENSION, t)
        return (
            ramp(t, onset, onset + YEAR, 140.0, self.systolic_hypertensive) - 6.0 * treated,
            ramp(t, onset, onset + YEAR, 90.0, self.diastolic_hypertensive) - 4.0 * treated,
        )

    def ldl(self, t: int) -> float:
        onset = self.onset[HYPERLIPIDEMIA]
        if onset is None:
            return self.ldl_base
        if t < onset:
            return ramp(t, onset - 3 * YEAR, onset, self.ldl_base, 160.0)
        level = ramp(t, onset, onset + YEAR, 160.0, self.ldl_high)
        return level * (1.0 - 0.1 * self._treatment(HYPERLIPIDEMIA, t))

    def creatinine(self, t: int) -> float:
        base = self.creatinine_base * (1.0 + 0.005 * max(0.0, self.age(t) - 40.0))
        onset = self.onset[CKD]
        if onset is None:
            return base
        if t < onset:
            return ramp(t, onset - 3 * YEAR, onset, base, 1.35)
        return ramp(t, onset, onset + 4 * YEAR, 1.35, self.creatinine_ckd)

    def has(self, condition: int, t: int) -> bool:
        onset = self.onset[condition]
        return onset is not None and onset <= t

    def bmi(self, t: int) -> float:
        return min(60.0, max(16.0, self.bmi0 + self.bmi_slope * (t - SPAN_START) / YEAR))

    def _obesity_onset(self) -> int | None:
        """When the BMI trend first reaches 30."""
        if self.bmi0 >= 30.0:
            return SPAN_START
        if self.bmi_slope <= 0.0:
            return None
        return int(SPAN_START + (30.0 - self.bmi0) / self.bmi_slope * YEAR)

    def comorbidities(self, t: int) -> int:
        """Chronic conditions present at t (drives how often the patient is admitted)."""
        return bisect.bisect_right(self._true_chronic, t)

    def diagnosed_comorbidities(self, t: int) -> int:
        """Chronic conditions on the problem list at t (what a model could know)."""
        return bisect.bisect_right(self._recorded_chronic, t)

    # --- schedules -----------------------------------------------------------------

    def _schedule_visits(self, horizon: int) -> None:
        """Wellness visits every 90-180 days (per-patient interval, phase and jitter)."""
        rng = stream(self.seed, self.index, VISIT_SCHEDULE)
        interval = rng.uniform(90.0, 180.0) * DAY
        starts, ends, labs = [], [], []
        t = self.adult + rng.uniform(0.0, interval)
        while t <= horizon:
            day_start = int(t) // DAY * DAY
            start = day_start + 8 * 3600 + int(rng.random() * 8 * 3600)
            starts.append(start)
            ends.append(start + 900 + int(rng.random() * 1800))
            labs.append(rng.random() < 0.5)
            t = day_start + interval * rng.uniform(0.85, 1.15)
        self.visit_start = starts
        self.visit_end = ends
        self.visit_labs = labs

    def _first_visit(self, t: int | None, needs_labs: bool) -> int | None:
        if t is None:
            return None
        i = bisect.bisect_left(self.visit_start, t)
        while i < len(self.visit_start):
            if self.visit_labs[i] or not needs_labs:
                return i
            i += 1
        return None

    def _diagnoses(self) -> list[int | None]:
        """Visit index at which each condition is diagnosed (first visit on or after onset;
        lab-defined conditions wait for a visit with labs). None: not diagnosed yet."""
        recorded = [self._first_visit(self.onset[c], c in _LAB_DIAGNOSED) for c in range(6)]
        prediabetes = self._first_visit(self._prediabetes_crossing(), True)
        if prediabetes is not None and recorded[DIABETES] is not None and prediabetes >= recorded[DIABETES]:
            prediabetes = None  # diagnosed straight away as diabetic
        recorded.append(prediabetes)
        recorded.append(self._first_visit(self._obesity_onset(), False))
        return recorded

    def _courses(self, treated, first_antihypertensive, stop_after_visits) -> list[Course]:
        plan = [
            (DIABETES, codes.METFORMIN),
            (HYPERTENSION, first_antihypertensive),
            (HYPERLIPIDEMIA, codes.ATORVASTATIN),
            (HEART_FAILURE, codes.FUROSEMIDE),
            (COPD, codes.FLUTICASONE_SALMETEROL),
        ]
        courses = []
        for condition, drug in plan:
            visit = self.recorded[condition]
            if visit is None or not treated[condition]:
                continue
            course = Course(len(courses), drug, condition, visit, self.visit_start[visit])
            courses.append(course)
            stop = visit + stop_after_visits[condition]
            if stop >= len(self.visit_start):
                continue
            course.end_visit = stop
            course.end = self.visit_start[stop]
            if drug is codes.LISINOPRIL:
                courses.append(
                    Course(len(courses), codes.AMLODIPINE, condition, stop, self.visit_start[stop])
                )
        return courses

    def _schedule_admissions(self, horizon: int) -> list[Admission]:
        """Inpatient stays: a Poisson process whose rate rises with age and comorbidity, and
        after each discharge a 30-day readmission with a logistic probability."""
        rng = stream(self.seed, self.index, ADMISSION_SCHEDULE)
        admissions: list[Admission] = []
        t = float(self.adult)
        readmission_due = False
        while True:
            if not readmission_due:
                rate = 0.05 * math.exp(0.035 * (self.age(t) - 65.0) + 0.45 * self.comorbidities(int(t)))
                t += rng.expovariate(rate) * YEAR
            if t > horizon:
                return admissions
            admit = int(t)
            age = self.age(admit)
            mean_los = 2.5 + 0.05 * max(0.0, age - 50.0) + 0.7 * self.comorbidities(admit)
            los_days = min(12, max(1, round(rng.gammavariate(2.0, mean_los / 2.0))))
            discharge = admit + los_days * DAY + rng.randint(-5 * 3600, 5 * 3600)
            prior = sum(1 for a in admissions if a.admit >= admit - 365 * DAY)
            risk = (
                READMISSION_INTERCEPT
                + READMISSION_AGE * (self.age(discharge) - 65.0)
                + READMISSION_COMORBIDITY * self.diagnosed_comorbidities(discharge)
                + READMISSION_PRIOR_ADMISSIONS * min(prior, READMISSION_PRIOR_CAP)
                + READMISSION_LOS * los_days
            )
            readmitted = rng.random() < sigmoid(risk)
            admissions.append(Admission(len(admissions), admit, discharge))
            if readmitted:
                t = discharge + rng.uniform(1.0, READMISSION_MAX_GAP_DAYS) * DAY
            else:
                t = discharge + NON_READMISSION_MIN_GAP_DAYS * DAY
            readmission_due = readmitted

    def _schedule_emergency_visits(self, horizon: int) -> list[tuple[int, int]]:
        """Treat-and-release emergency visits, more frequent for older and sicker patients."""
        rng = stream(self.seed, self.index, EMERGENCY_SCHEDULE)
        visits = []
        t = float(self.adult)
        while True:
            rate = 0.10 * math.exp(0.02 * (self.age(t) - 65.0) + 0.35 * self.comorbidities(int(t)))
            t += rng.expovariate(rate) * YEAR
            if t > horizon:
                return visits
            start = int(t)
            visits.append((start, start + 2 * 3600 + int(rng.random() * 6 * 3600)))

    def fills(self, course: Course, window_start: int, window_end: int):
        """Pharmacy fills of a course with time in (window_start, window_end]: (time, bits).

        Fill slots sit every supply_days after the course start; slot k > 0 is filled with
        probability = adherence and a few days late, so gaps make the days covered < 100%.
        Each slot has its own key, so the window can be entered at any slot.
        """
        period = self.supply_days * DAY
        latest = window_end if course.end is None else min(window_end, course.end - 1)
        first = max(0, (window_start - course.start) // period - 1)
        last = (latest - course.start) // period + 1
        fills = []
        for slot in range(first, last + 1):
            bits, filled, jitter = keyed_draws(self.seed, self.index, FILL, course.index << 20 | slot)
            if slot == 0:
                # First fill on the day of the prescription, 1-3 hours after the visit.
                t = self.visit_end[course.start_visit] + 3600 + int(jitter * 7200)
            elif filled < self.adherence:
                t = (
                    self.visit_end[course.start_visit]
                    + 3600
                    + slot * period
                    + int(jitter * self.fill_jitter_days) * DAY
                )
            else:
                continue
            if window_start < t <= latest:
                fills.append((t, bits))
        return fills
