"""Turns one patient's timeline into FHIR R4 resources for one extract window.

A resource is written when its event's time (meta.lastUpdated: the end of a visit or
stay, the time of a pharmacy fill) falls in the window. The Patient and the chronic
conditions on the problem list (recorded by the end of the window) are written in
every extract. Each event draws its details from its own random stream, so the same
event gives the same resource, byte for byte, in every extract that contains it.
"""

from __future__ import annotations

from . import codes
from . import timeline as tl
from .timeline import DAY, keyed_draws, stream, timestamp, timestamp_ms, uuid4

RESOURCE_TYPES = (
    "Patient",
    "Encounter",
    "Observation",
    "Condition",
    "MedicationRequest",
    "MedicationStatement",
)
PATIENT, ENCOUNTER, OBSERVATION, CONDITION, MEDICATION_REQUEST, MEDICATION_STATEMENT = range(6)

# One draw per measurement decides its quality problems (rates per measurement).
_DATA_ABSENT = 0.01  # no value, dataAbsentReason instead
_ENTERED_IN_ERROR = 0.0125  # a tenfold transcription error, later retracted
_AMENDED = 0.015

_SMOKING_VALUES = (codes.NEVER_SMOKER, codes.FORMER_SMOKER, codes.CURRENT_SMOKER)
_CHRONIC_CONCEPTS = {
    tl.DIABETES: codes.DIABETES,
    tl.HYPERTENSION: codes.HYPERTENSION,
    tl.HYPERLIPIDEMIA: codes.HYPERLIPIDEMIA,
    tl.CKD: codes.CKD,
    tl.HEART_FAILURE: codes.HEART_FAILURE,
    tl.COPD: codes.COPD,
    tl.PREDIABETES: codes.PREDIABETES,
    tl.OBESITY: codes.OBESITY,
}


def _meta(t: int) -> dict:
    return {"versionId": "1", "lastUpdated": timestamp(t)}


class _Event:
    """What all resources of one encounter share: meta, encounter reference, times."""

    __slots__ = ("rng", "meta", "encounter", "effective", "issued")

    def __init__(self, rng, meta, encounter, t):
        self.rng = rng
        self.meta = meta
        self.encounter = encounter
        self.at(t)

    def at(self, t: int) -> None:
        self.effective = timestamp(t)
        self.issued = timestamp_ms(t, int(self.rng.random() * 1000))


class PatientWriter:
    """Writes every resource of one patient for the window (start, end] into ``sink``,
    a callable (resource type index, resource dict)."""

    def __init__(self, seed: int, index: int, window_start: int, window_end: int, sink, bundled: bool):
        self.timeline = tl.PatientTimeline(seed, index, window_end)
        self.seed = seed
        self.index = index
        self.window_start = window_start
        self.window_end = window_end
        self.sink = sink
        # Inside a transaction Bundle, references point at the entries' fullUrls.
        self.bundled = bundled
        self.subject = self.reference("Patient", self.timeline.id)
        self.condition_refs: dict[int, dict] = {}

    def reference(self, resource_type: str, resource_id: str) -> dict:
        if self.bundled:
            return {"reference": "urn:uuid:" + resource_id}
        return {"reference": f"{resource_type}/{resource_id}"}

    def write(self) -> None:
        t = self.timeline
        self.sink(PATIENT, self.patient())
        self.problem_list()
        start, end = self.window_start, self.window_end
        events = []
        for v, visit_end in enumerate(t.visit_end):
            if start < visit_end <= end:
                events.append((visit_end, 0, v))
        for admission in t.admissions:
            if start < admission.discharge <= end:
                events.append((admission.discharge, 1, admission.index))
        for k, (_, visit_end) in enumerate(t.emergency_visits):
            if start < visit_end <= end:
                events.append((visit_end, 2, k))
        for course in t.courses:
            for fill_time, bits in t.fills(course, start, end):
                events.append((fill_time, 3, course.index, bits))
        events.sort()
        for event in events:
            kind = event[1]
            if kind == 0:
                self.wellness_visit(event[2])
            elif kind == 1:
                self.inpatient_stay(t.admissions[event[2]])
            elif kind == 2:
                self.emergency_visit(event[2])
            else:
                self.fill(t.courses[event[2]], event[0], event[3])

    # --- Patient and problem list -----------------------------------------------------

    def patient(self) -> dict:
        t = self.timeline
        rng = stream(self.seed, self.index, tl.DEMOGRAPHICS)
        gender = "female" if t.female else "male"
        given_names = codes.FEMALE_GIVEN_NAMES if t.female else codes.MALE_GIVEN_NAMES
        family = f"{rng.choice(codes.FAMILY_NAMES)}{rng.randint(10, 999)}"
        given = [f"{rng.choice(given_names)}{rng.randint(10, 999)}"]
        if rng.random() < 0.4:
            given.append(rng.choice(given_names))
        age = t.age_at_reference
        marital = rng.choices(
            "MSDW", weights=(25, 70, 5, 0) if age < 30 else (55, 15, 15, 15 if age >= 65 else 3)
        )[0]
        name = [
            {
                "use": "official",
                "family": family,
                "given": given,
                "prefix": ["Mrs." if marital == "M" else "Ms."] if t.female else ["Mr."],
            }
        ]
        if t.female and marital == "M":
            name.append(
                {
                    "use": "maiden",
                    "family": f"{rng.choice(codes.FAMILY_NAMES)}{rng.randint(10, 999)}",
                    "given": given,
                }
            )
        city, postal_code = rng.choice(codes.CITIES)
        birth_city, _ = rng.choice(codes.CITIES)
        race = rng.choices(
            [e for _, e in codes.RACE_EXTENSIONS], weights=[w for w, _ in codes.RACE_EXTENSIONS]
        )[0]
        hispanic = rng.random() < 0.12
        street = f"{rng.randint(1, 999)} {rng.choice(codes.FAMILY_NAMES)} {rng.choice(codes.STREET_SUFFIXES)}"
        if rng.random() < 0.3:
            street += f" {rng.choice(('Suite', 'Unit', 'Apt.'))} {rng.randint(1, 99)}"
        synthea_id = uuid4(rng.getrandbits(128))
        return {
            "resourceType": "Patient",
            "id": t.id,
            # Registered when the source system went live, before any extract date.
            "meta": _meta(tl.SPAN_START),
            "extension": [
                race,
                codes.ETHNICITY_EXTENSIONS[hispanic],
                {
                    "url": "http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName",
                    "valueString": f"{rng.choice(codes.FEMALE_GIVEN_NAMES)}{rng.randint(10, 999)} "
                    f"{rng.choice(codes.FAMILY_NAMES)}{rng.randint(10, 999)}",
                },
                codes.BIRTH_SEX_EXTENSIONS[gender],
                {
                    "url": "http://hl7.org/fhir/StructureDefinition/patient-birthPlace",
                    "valueAddress": {"city": birth_city, "state": "Massachusetts", "country": "US"},
                },
            ],
            "identifier": [
                {"system": codes.SYNTHEA_IDENTIFIER_SYSTEM, "value": synthea_id},
                {
                    "type": codes.MRN_TYPE,
                    "system": "http://hospital.smarthealthit.org",
                    "value": synthea_id,
                },
                {
                    "type": codes.SSN_TYPE,
                    "system": "http://hl7.org/fhir/sid/us-ssn",
                    "value": f"999-{rng.randint(10, 99)}-{rng.randint(1000, 9999)}",
                },
                {
                    "type": codes.DRIVERS_LICENSE_TYPE,
                    "system": "urn:oid:2.16.840.1.113883.4.3.25",
                    "value": f"S999{rng.randint(10000, 99999)}",
                },
            ],
            "name": name,
            "telecom": [
                {
                    "system": "phone",
                    "use": "home",
                    "value": f"555-{rng.randint(100, 999)}-{rng.randint(1000, 9999)}",
                }
            ],
            "gender": gender,
            "birthDate": tl.day_string(t.birth // DAY),
            "address": [
                {
                    "line": [street],
                    "city": city,
                    "state": "Massachusetts",
                    "postalCode": postal_code,
                    "country": "US",
                }
            ],
            "maritalStatus": codes.MARITAL_STATUSES[marital],
            "multipleBirthBoolean": False,
            "communication": codes.SPANISH if hispanic and rng.random() < 0.4 else codes.ENGLISH,
        }

    def problem_list(self) -> None:
        """Chronic conditions diagnosed by the end of the window. They stay active, so they
        are the same resource in every later extract; they carry no encounter reference
        because the diagnosing visit may lie before the window."""
        t = self.timeline
        for condition, visit in enumerate(t.recorded):
            if visit is None or t.visit_start[visit] > self.window_end:
                continue
            condition_id = uuid4(keyed_draws(self.seed, self.index, tl.CONDITION, condition)[0])
            self.condition_refs[condition] = self.reference("Condition", condition_id)
            recorded = timestamp(t.visit_start[visit])
            onset = t.condition_onset(condition)
            self.sink(
                CONDITION,
                {
                    "resourceType": "Condition",
                    "id": condition_id,
                    "meta": _meta(t.visit_start[visit]),
                    "clinicalStatus": codes.ACTIVE,
                    "verificationStatus": codes.CONFIRMED,
                    "category": codes.PROBLEM_LIST,
                    "code": _CHRONIC_CONCEPTS[condition],
                    "subject": self.subject,
                    "onsetDateTime": recorded if onset is None else timestamp(onset),
                    "recordedDate": recorded,
                },
            )

    # --- Observations --------------------------------------------------------------------

    def _observation(self, event: _Event, category: list, code: dict) -> dict:
        return {
            "resourceType": "Observation",
            "id": uuid4(event.rng.getrandbits(128)),
            "meta": event.meta,
            "status": "final",
            "category": category,
            "code": code,
            "subject": self.subject,
            "encounter": event.encounter,
            "effectiveDateTime": event.effective,
            "issued": event.issued,
        }

    def quantity(
        self,
        event: _Event,
        measure: codes.Measure,
        value: float,
        digits: int,
        category: list = codes.VITAL_SIGNS,
    ) -> None:
        resource = self._observation(event, category, measure.concept)
        rng = event.rng
        quality = rng.random()
        if quality < _DATA_ABSENT:
            resource["dataAbsentReason"] = codes.DATA_ABSENT_REASONS[int(quality / _DATA_ABSENT * 3)]
        else:
            if quality < _ENTERED_IN_ERROR:
                resource["status"] = "entered-in-error"
                value *= 10
            elif quality < _AMENDED:
                resource["status"] = "amended"
            value = round(value, digits)
            resource["valueQuantity"] = measure.quantity(value)
            if category is codes.LABORATORY:
                self._flags(rng, resource, measure, value)
        self.sink(OBSERVATION, resource)

    @staticmethod
    def _flags(rng, resource: dict, measure: codes.Measure, value: float) -> None:
        """Some labs carry an interpretation, some a reference range, some both, some none;
        the interpretation always agrees with the value."""
        draw = rng.random()
        with_range = draw < 0.25 or 0.5 <= draw < 0.65
        with_interpretation = 0.25 <= draw < 0.65
        if with_interpretation:
            if measure.critical_low is not None and value < measure.critical_low:
                code = "LL"
            elif measure.critical_high is not None and value > measure.critical_high:
                code = "HH"
            elif measure.low is not None and value < measure.low:
                code = "L"
            elif measure.high is not None and value > measure.high:
                code = "H"
            else:
                code = "N"
            resource["interpretation"] = codes.INTERPRETATIONS[code]
        if with_range:
            resource["referenceRange"] = measure.reference_range

    def blood_pressure(self, event: _Event, systolic: float, diastolic: float) -> None:
        rng = event.rng
        panel = codes.BP_PANEL_HL7 if rng.random() < 0.1 else codes.BP_PANEL_SYNTHEA
        resource = self._observation(event, codes.VITAL_SIGNS, panel)
        quality = rng.random()
        if quality < _DATA_ABSENT:
            # As in the HL7 example, the missing part is one component.
            systolic_value = {"dataAbsentReason": codes.DATA_ABSENT_REASONS[0]}
        else:
            if quality < _ENTERED_IN_ERROR:
                resource["status"] = "entered-in-error"
                systolic *= 10
            elif quality < _AMENDED:
                resource["status"] = "amended"
            systolic_value = {"valueQuantity": codes.SYSTOLIC.quantity(round(systolic))}
        resource["component"] = [
            {
                "code": codes.DIASTOLIC.concept,
                "valueQuantity": codes.DIASTOLIC.quantity(round(diastolic)),
            },
            {"code": codes.SYSTOLIC.concept, **systolic_value},
        ]
        self.sink(OBSERVATION, resource)

    def smoking_status(self, event: _Event) -> None:
        resource = self._observation(event, codes.SURVEY, codes.SMOKING_STATUS)
        resource["valueCodeableConcept"] = _SMOKING_VALUES[self.timeline.smoking]
        self.sink(OBSERVATION, resource)

    def spo2(self, event: _Event, value: float) -> None:
        measure = codes.SPO2_PULSE_OXIMETRY if event.rng.random() < 0.15 else codes.SPO2
        self.quantity(event, measure, min(100.0, value), 1)

    def glucose(self, event: _Event, mg_per_dl: float) -> None:
        """Mostly Synthea's 2339-0; some sites send 2345-7, a few send mmol/L (15074-8)."""
        draw = event.rng.random()
        if draw < 0.05:
            self.quantity(event, codes.GLUCOSE_MOLAR, mg_per_dl / 18.016, 1, codes.LABORATORY)
        elif draw < 0.15:
            self.quantity(event, codes.GLUCOSE_SERUM, mg_per_dl, 1, codes.LABORATORY)
        else:
            self.quantity(event, codes.GLUCOSE, mg_per_dl, 1, codes.LABORATORY)

    def creatinine(self, event: _Event, value: float) -> None:
        measure = codes.CREATININE_SERUM if event.rng.random() < 0.2 else codes.CREATININE
        self.quantity(event, measure, value, 2, codes.LABORATORY)

    # --- Encounters ----------------------------------------------------------------------

    def encounter(
        self,
        rng,
        encounter_class: dict,
        encounter_type: list,
        start: int,
        end: int,
        reason: list | None = None,
    ) -> _Event:
        encounter_id = uuid4(rng.getrandbits(128))
        meta = _meta(end)
        resource = {
            "resourceType": "Encounter",
            "id": encounter_id,
            "meta": meta,
            "status": "finished",
            "class": encounter_class,
            "type": encounter_type,
            "subject": self.subject,
            "period": {"start": timestamp(start), "end": timestamp(end)},
        }
        if reason is not None:
            resource["reasonCode"] = reason
        self.sink(ENCOUNTER, resource)
        return _Event(rng, meta, self.reference("Encounter", encounter_id), start)

    def wellness_visit(self, v: int) -> None:
        t = self.timeline
        rng = stream(self.seed, self.index, tl.VISIT, v)
        start = t.visit_start[v]
        kind = codes.CHECK_UP if rng.random() < 0.8 else codes.GENERAL_EXAM
        event = self.encounter(rng, codes.AMBULATORY, kind, start, t.visit_end[v])
        gauss = rng.gauss
        heart_failure = t.has(tl.HEART_FAILURE, start)
        copd = t.has(tl.COPD, start)

        height = t.height + gauss(0.0, 0.3)
        bmi = t.bmi(start) + gauss(0.0, 0.3)
        self.quantity(event, codes.HEIGHT, height, 1)
        self.quantity(event, codes.WEIGHT, bmi * (height / 100.0) ** 2, 1)
        self.quantity(event, codes.BMI, bmi, 1)
        systolic, diastolic = t.blood_pressure(start)
        self.blood_pressure(event, systolic + gauss(0.0, 6.0), diastolic + gauss(0.0, 4.0))
        heart_rate = t.heart_rate_base + 8 * heart_failure + 5 * copd + gauss(0.0, 5.0)
        spo2 = t.spo2_base - 3.5 * copd - 1.5 * heart_failure + gauss(0.0, 0.8)
        if (heart_failure or copd) and rng.random() < 0.1:
            # A bad day for a sick patient: tachycardic and hypoxic at the visit.
            heart_rate += 25.0
            spo2 = rng.uniform(85.0, 89.5)
        self.quantity(event, codes.HEART_RATE, heart_rate, 0)
        self.quantity(event, codes.RESPIRATORY_RATE, 15.0 + 4 * copd + gauss(0.0, 1.5), 0)
        self.quantity(event, codes.BODY_TEMPERATURE, 36.8 + gauss(0.0, 0.25), 1)
        self.spo2(event, spo2)
        self.smoking_status(event)

        if t.visit_labs[v]:
            event.at(start + 1800)
            diabetic = t.has(tl.DIABETES, start)
            a1c = t.hba1c(start)
            self.quantity(event, codes.HBA1C, a1c + gauss(0.0, 0.12), 1, codes.LABORATORY)
            self.glucose(event, t.fasting_glucose(a1c) + gauss(0.0, 7.0))
            self.creatinine(event, t.creatinine(start) * (1.0 + gauss(0.0, 0.06)))
            ldl = t.ldl(start) + gauss(0.0, 8.0)
            hdl = max(20.0, t.hdl_base - 0.4 * (bmi - 28.0) - 4.0 * diabetic + gauss(0.0, 4.0))
            triglycerides = max(
                40.0,
                t.triglycerides_base
                + 4.0 * (bmi - 28.0)
                + 50.0 * diabetic
                + 40.0 * t.has(tl.HYPERLIPIDEMIA, start)
                + gauss(0.0, 15.0),
            )
            self.quantity(
                event,
                codes.TOTAL_CHOLESTEROL,
                ldl + hdl + triglycerides / 5.0 + gauss(0.0, 5.0),
                1,
                codes.LABORATORY,
            )
            measure = codes.LDL_DIRECT if rng.random() < 0.15 else codes.LDL
            self.quantity(event, measure, ldl, 1, codes.LABORATORY)
            self.quantity(event, codes.HDL, hdl, 1, codes.LABORATORY)
            self.quantity(event, codes.TRIGLYCERIDES, triglycerides, 1, codes.LABORATORY)
            self.quantity(
                event,
                codes.HEMOGLOBIN,
                t.hemoglobin_base - 1.5 * t.has(tl.CKD, start) + gauss(0.0, 0.4),
                1,
                codes.LABORATORY,
            )

        for course in t.courses:
            if course.start_visit <= v and (course.end_visit is None or v < course.end_visit):
                self.prescription(event, course, start)
            elif course.end_visit == v:
                self.discontinuation(event, course, start)

    def inpatient_stay(self, admission: tl.Admission) -> None:
        t = self.timeline
        rng = stream(self.seed, self.index, tl.ADMISSION, admission.index)
        admit, discharge = admission.admit, admission.discharge
        reason = self._admission_reason(rng, admit)
        concept, drug, fever, hypoxic = reason
        event = self.encounter(rng, codes.INPATIENT, codes.HOSPITAL_ADMISSION, admit, discharge, [concept])
        gauss = rng.gauss
        condition_id = uuid4(rng.getrandbits(128))
        condition_ref = self.reference("Condition", condition_id)
        self.sink(
            CONDITION,
            {
                "resourceType": "Condition",
                "id": condition_id,
                "meta": event.meta,
                "clinicalStatus": codes.RESOLVED,
                "verificationStatus": codes.CONFIRMED,
                "category": codes.ENCOUNTER_DIAGNOSIS,
                "code": concept,
                "subject": self.subject,
                "encounter": event.encounter,
                "onsetDateTime": timestamp(admit),
                "abatementDateTime": timestamp(discharge),
                "recordedDate": timestamp(admit),
            },
        )

        # Vitals on arrival: febrile, hypoxic and tachycardic as the reason implies.
        event.at(admit + 1200 + int(rng.random() * 2400))
        systolic, diastolic = t.blood_pressure(admit)
        self.blood_pressure(event, systolic + 5.0 + gauss(0.0, 10.0), diastolic + 3.0 + gauss(0.0, 6.0))
        heart_rate = t.heart_rate_base + 18.0 + 10.0 * fever + 6.0 * hypoxic + gauss(0.0, 8.0)
        self.quantity(event, codes.HEART_RATE, heart_rate, 0)
        self.quantity(event, codes.RESPIRATORY_RATE, 18.0 + 5.0 * hypoxic + gauss(0.0, 2.0), 0)
        temperature = rng.uniform(38.1, 39.6) if fever else 36.9 + gauss(0.0, 0.3)
        self.quantity(event, codes.BODY_TEMPERATURE, temperature, 1)
        self.spo2(event, rng.uniform(84.0, 92.5) if hypoxic else t.spo2_base - 1.0 + gauss(0.0, 1.0))

        event.at(admit + 3600 + int(rng.random() * 3600))
        if reason is codes.HYPERGLYCEMIA:
            glucose = rng.uniform(280.0, 520.0)
        else:
            glucose = t.fasting_glucose(t.hba1c(admit)) + 15.0 + gauss(0.0, 15.0)
        self.glucose(event, glucose)
        creatinine = t.creatinine(admit) * (1.0 + gauss(0.0, 0.08))
        if reason is codes.ACUTE_KIDNEY_INJURY:
            creatinine *= rng.uniform(1.8, 3.0)
        self.creatinine(event, creatinine)
        self.quantity(
            event,
            codes.HEMOGLOBIN,
            t.hemoglobin_base - 0.6 - 1.5 * t.has(tl.CKD, admit) + gauss(0.0, 0.6),
            1,
            codes.LABORATORY,
        )

        # Vitals before discharge: back to the patient's usual state.
        event.at(discharge - 7200 - int(rng.random() * 7200))
        self.blood_pressure(event, systolic + gauss(0.0, 6.0), diastolic + gauss(0.0, 4.0))
        self.quantity(event, codes.HEART_RATE, t.heart_rate_base + 4.0 + gauss(0.0, 5.0), 0)
        self.spo2(event, t.spo2_base - 3.0 * t.has(tl.COPD, admit) + gauss(0.0, 0.8))

        self.inpatient_order(event, drug, admit, discharge, condition_ref)

    def _admission_reason(self, rng, admit: int) -> tuple:
        t = self.timeline
        elderly = t.age(admit) >= 75
        reasons = (
            (codes.PNEUMONIA, 3.0),
            (codes.URINARY_INFECTION, 2.0),
            (codes.SEPSIS, 1.0),
            (codes.CHEST_PAIN, 2.0),
            (codes.HIP_FRACTURE, 1.0 + 2.0 * elderly),
            (codes.STROKE, 1.0 + t.has(tl.HYPERTENSION, admit)),
            (codes.HEART_FAILURE_EXACERBATION, 5.0 * t.has(tl.HEART_FAILURE, admit)),
            (codes.COPD_EXACERBATION, 5.0 * t.has(tl.COPD, admit)),
            (codes.HYPERGLYCEMIA, 3.0 * t.has(tl.DIABETES, admit)),
            (codes.ACUTE_KIDNEY_INJURY, 3.0 * t.has(tl.CKD, admit)),
        )
        return rng.choices([r for r, _ in reasons], weights=[w for _, w in reasons])[0]

    def emergency_visit(self, k: int) -> None:
        t = self.timeline
        start, end = t.emergency_visits[k]
        rng = stream(self.seed, self.index, tl.EMERGENCY_VISIT, k)
        event = self.encounter(
            rng,
            codes.EMERGENCY,
            codes.EMERGENCY_ADMISSION,
            start,
            end,
            rng.choice(codes.EMERGENCY_REASONS),
        )
        event.at(start + 600 + int(rng.random() * 1800))
        gauss = rng.gauss
        systolic, diastolic = t.blood_pressure(start)
        self.blood_pressure(event, systolic + 8.0 + gauss(0.0, 8.0), diastolic + 4.0 + gauss(0.0, 5.0))
        self.quantity(event, codes.HEART_RATE, t.heart_rate_base + 12.0 + gauss(0.0, 9.0), 0)
        self.quantity(event, codes.RESPIRATORY_RATE, 17.0 + 3.0 * t.has(tl.COPD, start) + gauss(0.0, 2.0), 0)
        self.quantity(event, codes.BODY_TEMPERATURE, 37.0 + abs(gauss(0.0, 0.5)), 1)
        self.spo2(event, t.spo2_base - 3.5 * t.has(tl.COPD, start) + gauss(0.0, 1.2))

    # --- Medications ---------------------------------------------------------------------

    def _request(self, event: _Event, status: str, drug: codes.Drug, authored: int, reason: dict) -> dict:
        return {
            "resourceType": "MedicationRequest",
            "id": uuid4(event.rng.getrandbits(128)),
            "meta": event.meta,
            "status": status,
            "intent": "order",
            "medicationCodeableConcept": drug.concept,
            "subject": self.subject,
            "encounter": event.encounter,
            "authoredOn": timestamp(authored),
            "reasonReference": [reason],
            "dosageInstruction": drug.dosage,
        }

    def _statement(
        self,
        bits: int,
        meta: dict,
        status: str,
        drug: codes.Drug,
        start: int,
        end: int,
        asserted: int,
        reason: dict,
        encounter: dict | None,
    ) -> dict:
        resource = {
            "resourceType": "MedicationStatement",
            "id": uuid4(bits),
            "meta": meta,
            "status": status,
            "medicationCodeableConcept": drug.concept,
            "subject": self.subject,
            "effectivePeriod": {"start": timestamp(start), "end": timestamp(end)},
            "dateAsserted": timestamp(asserted),
            "reasonReference": [reason],
        }
        if encounter is not None:
            resource["context"] = encounter
        return resource

    def prescription(self, event: _Event, course: tl.Course, authored: int) -> None:
        """A new or renewed order of a chronic drug: a year of refills."""
        days = self.timeline.supply_days
        resource = self._request(
            event, "active", course.drug, authored, self.condition_refs[course.condition]
        )
        quantity, duration = course.drug.supply(days)
        resource["dispenseRequest"] = {
            "validityPeriod": {
                "start": timestamp(authored),
                "end": timestamp(authored + 365 * DAY),
            },
            "numberOfRepeatsAllowed": 365 // days - 1,
            "quantity": quantity,
            "expectedSupplyDuration": duration,
        }
        self.sink(MEDICATION_REQUEST, resource)

    def discontinuation(self, event: _Event, course: tl.Course, stopped: int) -> None:
        """The drug is stopped at this visit: a stopped order and the patient's statement."""
        reason = self.condition_refs[course.condition]
        self.sink(MEDICATION_REQUEST, self._request(event, "stopped", course.drug, stopped, reason))
        self.sink(
            MEDICATION_STATEMENT,
            self._statement(
                event.rng.getrandbits(128),
                event.meta,
                "stopped",
                course.drug,
                course.start,
                stopped,
                stopped,
                reason,
                event.encounter,
            ),
        )

    def inpatient_order(
        self, event: _Event, drug: codes.Drug, admit: int, discharge: int, reason: dict
    ) -> None:
        """Given during the stay and completed at discharge (no dispensing)."""
        self.sink(MEDICATION_REQUEST, self._request(event, "completed", drug, admit + 3600, reason))
        self.sink(
            MEDICATION_STATEMENT,
            self._statement(
                event.rng.getrandbits(128),
                event.meta,
                "completed",
                drug,
                admit + 3600,
                discharge,
                discharge,
                reason,
                event.encounter,
            ),
        )

    def fill(self, course: tl.Course, t: int, bits: int) -> None:
        """A pharmacy fill, reported as the period the supply covers."""
        days = self.timeline.supply_days
        self.sink(
            MEDICATION_STATEMENT,
            self._statement(
                bits,
                _meta(t),
                "active",
                course.drug,
                t,
                t + days * DAY,
                t,
                self.condition_refs[course.condition],
                None,
            ),
        )
