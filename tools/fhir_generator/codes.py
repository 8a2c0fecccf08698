"""Terminology and reference data for the generator.

Every coding is built once here and shared by all resources that use it:
orjson serialises a shared dict as often as it is referenced, so nothing is
copied per resource. Codes, displays and systems follow Synthea's R4 output
(see shared/fhir-samples/synthea-ndjson-pathling), so downstream value sets
written for Synthea data also cover this data.
"""

from __future__ import annotations

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
UCUM = "http://unitsofmeasure.org"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
INTERPRETATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
DATA_ABSENT_SYSTEM = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CONDITION_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
CONDITION_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
IDENTIFIER_TYPE = "http://terminology.hl7.org/CodeSystem/v2-0203"
ORDERABLE_DRUG_FORM = "http://terminology.hl7.org/CodeSystem/v3-orderableDrugForm"
OMB_RACE_ETHNICITY = "urn:oid:2.16.840.1.113883.6.238"


def concept(system: str, code: str, display: str) -> dict:
    """A CodeableConcept with one coding and the display repeated as text, as Synthea writes."""
    return {"coding": [{"system": system, "code": code, "display": display}], "text": display}


def category(system: str, code: str, display: str | None = None) -> list:
    coding = {"system": system, "code": code}
    if display is not None:
        coding["display"] = display
    return [{"coding": [coding]}]


# --- Observation -----------------------------------------------------------

VITAL_SIGNS = category(OBSERVATION_CATEGORY, "vital-signs", "vital-signs")
LABORATORY = category(OBSERVATION_CATEGORY, "laboratory", "laboratory")
SURVEY = category(OBSERVATION_CATEGORY, "survey", "survey")


class Measure:
    """One kind of numeric observation: its LOINC concept, UCUM unit and, for
    labs, a reference range plus the critical limits used for HH/LL flags."""

    __slots__ = (
        "code",
        "concept",
        "unit",
        "ucum",
        "low",
        "high",
        "critical_low",
        "critical_high",
        "reference_range",
    )

    def __init__(
        self,
        code,
        display,
        unit,
        ucum=None,
        low=None,
        high=None,
        critical_low=None,
        critical_high=None,
    ):
        self.code = code
        self.concept = concept(LOINC, code, display)
        self.unit = unit
        self.ucum = ucum or unit
        self.low = low
        self.high = high
        self.critical_low = critical_low
        self.critical_high = critical_high
        self.reference_range = None
        if low is not None or high is not None:
            bound = {}
            if low is not None:
                bound["low"] = self.quantity(low)
            if high is not None:
                bound["high"] = self.quantity(high)
            self.reference_range = [bound]

    def quantity(self, value: float) -> dict:
        return {"value": value, "unit": self.unit, "system": UCUM, "code": self.ucum}


HEIGHT = Measure("8302-2", "Body Height", "cm")
WEIGHT = Measure("29463-7", "Body Weight", "kg")
BMI = Measure("39156-5", "Body Mass Index", "kg/m2")
HEART_RATE = Measure("8867-4", "Heart rate", "/min")
RESPIRATORY_RATE = Measure("9279-1", "Respiratory rate", "/min")
BODY_TEMPERATURE = Measure("8310-5", "Body temperature", "Cel")
SPO2 = Measure("2708-6", "Oxygen saturation in Arterial blood", "%")
SPO2_PULSE_OXIMETRY = Measure("59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry", "%")
SYSTOLIC = Measure("8480-6", "Systolic Blood Pressure", "mm[Hg]")
DIASTOLIC = Measure("8462-4", "Diastolic Blood Pressure", "mm[Hg]")
# Synthea writes its own panel code 55284-4; the HL7 vital-signs profile uses 85354-9.
BP_PANEL_SYNTHEA = concept(LOINC, "55284-4", "Blood Pressure")
BP_PANEL_HL7 = concept(LOINC, "85354-9", "Blood pressure panel with all children optional")

GLUCOSE = Measure("2339-0", "Glucose", "mg/dL", low=70, high=99, critical_low=50, critical_high=400)
GLUCOSE_SERUM = Measure(
    "2345-7",
    "Glucose [Mass/volume] in Serum or Plasma",
    "mg/dL",
    low=70,
    high=99,
    critical_low=50,
    critical_high=400,
)
GLUCOSE_MOLAR = Measure(
    "15074-8",
    "Glucose [Moles/volume] in Blood",
    "mmol/L",
    low=3.9,
    high=5.5,
    critical_low=2.8,
    critical_high=22.2,
)
HBA1C = Measure(
    "4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "%", low=4.0, high=5.6, critical_high=12.0
)
CREATININE = Measure("38483-4", "Creatinine", "mg/dL", low=0.6, high=1.3, critical_high=4.0)
CREATININE_SERUM = Measure(
    "2160-0",
    "Creatinine [Mass/volume] in Serum or Plasma",
    "mg/dL",
    low=0.6,
    high=1.3,
    critical_high=4.0,
)
TOTAL_CHOLESTEROL = Measure("2093-3", "Total Cholesterol", "mg/dL", high=199)
LDL = Measure("18262-6", "Low Density Lipoprotein Cholesterol", "mg/dL", high=129)
LDL_DIRECT = Measure("2089-1", "Cholesterol in LDL [Mass/volume] in Serum or Plasma", "mg/dL", high=129)
HDL = Measure("2085-9", "High Density Lipoprotein Cholesterol", "mg/dL", low=40)
TRIGLYCERIDES = Measure("2571-8", "Triglycerides", "mg/dL", high=149, critical_high=1000)
HEMOGLOBIN = Measure(
    "718-7",
    "Hemoglobin [Mass/volume] in Blood",
    "g/dL",
    low=12.0,
    high=17.5,
    critical_low=7.0,
    critical_high=20.0,
)

SMOKING_STATUS = concept(LOINC, "72166-2", "Tobacco smoking status NHIS")
NEVER_SMOKER = concept(SNOMED, "266919005", "Never smoker")
FORMER_SMOKER = concept(SNOMED, "8517006", "Ex-smoker (finding)")
CURRENT_SMOKER = concept(SNOMED, "449868002", "Smokes tobacco daily (finding)")

INTERPRETATIONS = {
    code: [
        {
            "coding": [{"system": INTERPRETATION_SYSTEM, "code": code, "display": display}],
            "text": display,
        }
    ]
    for code, display in (
        ("N", "Normal"),
        ("H", "High"),
        ("L", "Low"),
        ("HH", "Critical high"),
        ("LL", "Critical low"),
    )
}

DATA_ABSENT_REASONS = [
    {"coding": [{"system": DATA_ABSENT_SYSTEM, "code": code, "display": display}], "text": display}
    for code, display in (
        ("unknown", "Unknown"),
        ("not-performed", "Not Performed"),
        ("error", "Error"),
    )
]

# --- Encounter ---------------------------------------------------------------

AMBULATORY = {"system": ACT_CODE, "code": "AMB"}
INPATIENT = {"system": ACT_CODE, "code": "IMP"}
EMERGENCY = {"system": ACT_CODE, "code": "EMER"}
CHECK_UP = [concept(SNOMED, "185349003", "Encounter for check up (procedure)")]
GENERAL_EXAM = [concept(SNOMED, "162673000", "General examination of patient (procedure)")]
HOSPITAL_ADMISSION = [concept(SNOMED, "32485007", "Hospital admission (procedure)")]
EMERGENCY_ADMISSION = [concept(SNOMED, "50849002", "Emergency room admission (procedure)")]

# --- Condition ---------------------------------------------------------------

ACTIVE = {"coding": [{"system": CONDITION_CLINICAL, "code": "active"}]}
RESOLVED = {"coding": [{"system": CONDITION_CLINICAL, "code": "resolved"}]}
CONFIRMED = {"coding": [{"system": CONDITION_VERIFICATION, "code": "confirmed"}]}
PROBLEM_LIST = category(CONDITION_CATEGORY, "problem-list-item", "Problem List Item")
ENCOUNTER_DIAGNOSIS = category(CONDITION_CATEGORY, "encounter-diagnosis", "Encounter Diagnosis")

DIABETES = concept(SNOMED, "44054006", "Diabetes mellitus type 2 (disorder)")
PREDIABETES = concept(SNOMED, "15777000", "Prediabetes")
HYPERTENSION = concept(SNOMED, "59621000", "Essential hypertension (disorder)")
HYPERLIPIDEMIA = concept(SNOMED, "55822004", "Hyperlipidemia")
CKD = concept(SNOMED, "431855005", "Chronic kidney disease stage 1 (disorder)")
HEART_FAILURE = concept(SNOMED, "88805009", "Chronic congestive heart failure (disorder)")
COPD = concept(SNOMED, "13645005", "Chronic obstructive bronchitis (disorder)")
OBESITY = concept(SNOMED, "162864005", "Body mass index 30+ - obesity (finding)")

# --- Medication ----------------------------------------------------------------

DOSE_RATE_ORDERED = {
    "coding": [
        {
            "system": "http://terminology.hl7.org/CodeSystem/dose-rate-type",
            "code": "ordered",
            "display": "Ordered",
        }
    ]
}


class Drug:
    """A prescribable product with its shared CodeableConcept and dosage instruction."""

    __slots__ = ("concept", "dosage", "_quantities")

    def __init__(self, code, display, text, frequency, period_hours, unit, form, units_per_day=1.0):
        self.concept = concept(RXNORM, code, display)
        if period_hours is None:
            timing = {"repeat": {"frequency": frequency, "period": 1.0, "periodUnit": "d"}}
        else:
            timing = {"repeat": {"frequency": 1, "period": float(period_hours), "periodUnit": "h"}}
        self.dosage = [
            {
                "sequence": 1,
                "text": text,
                "timing": timing,
                "asNeededBoolean": False,
                "doseAndRate": [{"type": DOSE_RATE_ORDERED, "doseQuantity": {"value": 1.0}}],
            }
        ]
        # Dispensed quantity and expected supply per fill, for 30- and 90-day supplies.
        self._quantities = {
            days: (
                {
                    "value": max(1, round(days * units_per_day)),
                    "unit": unit,
                    "system": ORDERABLE_DRUG_FORM,
                    "code": form,
                },
                {"value": days, "unit": "days", "system": UCUM, "code": "d"},
            )
            for days in (30, 90)
        }

    def supply(self, days: int) -> tuple[dict, dict]:
        """(quantity, expectedSupplyDuration) for a fill of ``days`` days."""
        return self._quantities[days]


_TABLET = ("tablet", "TAB")
METFORMIN = Drug(
    "860975",
    "24 HR Metformin hydrochloride 500 MG Extended Release Oral Tablet",
    "Take 1 tablet by mouth once daily with the evening meal",
    1,
    None,
    *_TABLET,
)
LISINOPRIL = Drug(
    "314076", "lisinopril 10 MG Oral Tablet", "Take 1 tablet by mouth once daily", 1, None, *_TABLET
)
AMLODIPINE = Drug(
    "197361", "Amlodipine 5 MG Oral Tablet", "Take 1 tablet by mouth once daily", 1, None, *_TABLET
)
ATORVASTATIN = Drug(
    "259255",
    "Atorvastatin 80 MG Oral Tablet",
    "Take 1 tablet by mouth once daily at bedtime",
    1,
    None,
    *_TABLET,
)
FUROSEMIDE = Drug(
    "310429",
    "Furosemide 20 MG Oral Tablet",
    "Take 1 tablet by mouth once daily in the morning",
    1,
    None,
    *_TABLET,
)
FLUTICASONE_SALMETEROL = Drug(
    "896209",
    "60 ACTUAT Fluticasone propionate 0.25 MG/ACTUAT / salmeterol 0.05 MG/ACTUAT Dry Powder Inhaler",
    "Inhale 1 puff twice daily",
    2,
    None,
    "inhaler",
    "INHL",
    1 / 30,
)
# Inpatient orders: given during the stay and closed at discharge.
ALBUTEROL = Drug(
    "745679",
    "200 ACTUAT Albuterol 0.09 MG/ACTUAT Metered Dose Inhaler",
    "Inhale 2 puffs every 6 hours",
    1,
    6,
    "inhaler",
    "INHL",
)
AMOXICILLIN_CLAVULANATE = Drug(
    "562251",
    "Amoxicillin 250 MG / Clavulanate 125 MG Oral Tablet",
    "Take 1 tablet by mouth every 8 hours",
    1,
    8,
    *_TABLET,
)
PENICILLIN_G = Drug(
    "105078",
    "Penicillin G 375 MG/ML Injectable Solution",
    "Inject every 6 hours",
    1,
    6,
    "vial",
    "VIAL",
)
NITROFURANTOIN = Drug(
    "311989",
    "Nitrofurantoin 5 MG/ML Oral Suspension",
    "Take 10 mL by mouth every 6 hours",
    1,
    6,
    "mL",
    "ORSUSP",
)
NITROGLYCERIN = Drug(
    "705129",
    "Nitroglycerin 0.4 MG/ACTUAT Mucosal Spray",
    "1 spray under the tongue as directed",
    1,
    None,
    "spray",
    "SPRAY",
)
ASPIRIN = Drug("243670", "Aspirin 81 MG Oral Tablet", "Take 1 tablet by mouth once daily", 1, None, *_TABLET)
OXYCODONE_ACETAMINOPHEN = Drug(
    "1049221",
    "Acetaminophen 325 MG / oxyCODONE Hydrochloride 5 MG Oral Tablet",
    "Take 1 tablet by mouth every 6 hours as needed for pain",
    1,
    6,
    *_TABLET,
)
ACETAMINOPHEN = Drug(
    "313782",
    "Acetaminophen 325 MG Oral Tablet",
    "Take 1 tablet by mouth every 6 hours",
    1,
    6,
    *_TABLET,
)
INSULIN = Drug(
    "106892",
    "insulin human, isophane 70 UNT/ML / Regular Insulin, Human 30 UNT/ML Injectable Suspension [Humulin]",
    "Inject subcutaneously twice daily",
    2,
    None,
    "vial",
    "VIAL",
)

# --- Admission and emergency reasons ------------------------------------------
# (concept, inpatient drug, fever?, low oxygen?) — the last two shape the vitals.

PNEUMONIA = (
    concept(SNOMED, "233604007", "Pneumonia (disorder)"),
    AMOXICILLIN_CLAVULANATE,
    True,
    True,
)
COPD_EXACERBATION = (
    concept(SNOMED, "195951007", "Acute exacerbation of chronic obstructive airways disease (disorder)"),
    ALBUTEROL,
    False,
    True,
)
HEART_FAILURE_EXACERBATION = (
    concept(SNOMED, "84114007", "Heart failure (disorder)"),
    FUROSEMIDE,
    False,
    True,
)
HYPERGLYCEMIA = (concept(SNOMED, "80394007", "Hyperglycemia (disorder)"), INSULIN, False, False)
CHEST_PAIN = (concept(SNOMED, "29857009", "Chest pain (finding)"), NITROGLYCERIN, False, False)
URINARY_INFECTION = (
    concept(SNOMED, "68566005", "Urinary tract infectious disease (disorder)"),
    NITROFURANTOIN,
    True,
    False,
)
SEPSIS = (concept(SNOMED, "91302008", "Sepsis (disorder)"), PENICILLIN_G, True, True)
ACUTE_KIDNEY_INJURY = (
    concept(SNOMED, "14669001", "Acute renal failure syndrome (disorder)"),
    ACETAMINOPHEN,
    False,
    False,
)
HIP_FRACTURE = (
    concept(SNOMED, "5913000", "Fracture of neck of femur (disorder)"),
    OXYCODONE_ACETAMINOPHEN,
    False,
    False,
)
STROKE = (
    concept(SNOMED, "230690007", "Cerebrovascular accident (disorder)"),
    ASPIRIN,
    False,
    False,
)

EMERGENCY_REASONS = [
    [concept(SNOMED, "29857009", "Chest pain (finding)")],
    [concept(SNOMED, "21522001", "Abdominal pain (finding)")],
    [concept(SNOMED, "267036007", "Dyspnea (finding)")],
    [concept(SNOMED, "161891005", "Backache (finding)")],
    [concept(SNOMED, "386661006", "Fever (finding)")],
]

# --- Patient demographics -----------------------------------------------------

SYNTHEA_IDENTIFIER_SYSTEM = "https://github.com/synthetichealth/synthea"
MRN_TYPE = {
    "coding": [{"system": IDENTIFIER_TYPE, "code": "MR", "display": "Medical Record Number"}],
    "text": "Medical Record Number",
}
SSN_TYPE = {
    "coding": [{"system": IDENTIFIER_TYPE, "code": "SS", "display": "Social Security Number"}],
    "text": "Social Security Number",
}
DRIVERS_LICENSE_TYPE = {
    "coding": [{"system": IDENTIFIER_TYPE, "code": "DL", "display": "Driver's License"}],
    "text": "Driver's License",
}

RACES = [  # (weight, code, display)
    (70, "2106-3", "White"),
    (10, "2054-5", "Black or African American"),
    (7, "2028-9", "Asian"),
    (1, "1002-5", "American Indian or Alaska Native"),
    (1, "2076-8", "Native Hawaiian or Other Pacific Islander"),
    (11, "2131-1", "Other"),
]
HISPANIC = ("2135-2", "Hispanic or Latino")
NOT_HISPANIC = ("2186-5", "Not Hispanic or Latino")


def omb_extension(url: str, code: str, display: str) -> dict:
    return {
        "url": url,
        "extension": [
            {
                "url": "ombCategory",
                "valueCoding": {"system": OMB_RACE_ETHNICITY, "code": code, "display": display},
            },
            {"url": "text", "valueString": display},
        ],
    }


RACE_EXTENSIONS = [
    (
        weight,
        omb_extension("http://hl7.org/fhir/us/core/StructureDefinition/us-core-race", code, display),
    )
    for weight, code, display in RACES
]
ETHNICITY_EXTENSIONS = {
    hispanic: omb_extension(
        "http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity",
        *(HISPANIC if hispanic else NOT_HISPANIC),
    )
    for hispanic in (True, False)
}
BIRTH_SEX_EXTENSIONS = {
    gender: {
        "url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex",
        "valueCode": gender[0].upper(),
    }
    for gender in ("male", "female")
}
MARITAL_STATUSES = {
    code: {
        "coding": [
            {
                "system": "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus",
                "code": code,
                "display": display,
            }
        ],
        "text": display,
    }
    for code, display in (
        ("M", "Married"),
        ("S", "Never Married"),
        ("D", "Divorced"),
        ("W", "Widowed"),
    )
}
ENGLISH = [
    {
        "language": {
            "coding": [{"system": "urn:ietf:bcp:47", "code": "en-US", "display": "English"}],
            "text": "English",
        }
    }
]
SPANISH = [
    {
        "language": {
            "coding": [{"system": "urn:ietf:bcp:47", "code": "es", "display": "Spanish"}],
            "text": "Spanish",
        }
    }
]

# fmt: off
FAMILY_NAMES = [
    "Krajcik", "Tremblay", "Senger", "Schuster", "Kuhn", "Bergstrom", "Hettinger", "Rempel",
    "Wunsch", "Gleichner", "Kozey", "Koepp", "Kshlerin", "Ledner", "Lindgren", "Lowe", "Marvin",
    "Mayer", "Mohr", "Murazik", "Nader", "Nienow", "Okuneva", "Pacocha", "Predovic", "Quigley",
    "Reichert", "Reynolds", "Rohan", "Runolfsdottir", "Schaden", "Schmeler", "Schowalter",
    "Stark", "Stokes", "Streich", "Torp", "Upton", "Veum", "Volkman", "Walsh", "Weissnat",
    "Wiza", "Wolff", "Yost", "Zboncak", "Zemlak", "Zulauf", "Smith", "Johnson", "Williams",
    "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez", "Hernandez",
    "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin",
    "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez", "Clark", "Ramirez", "Lewis",
    "Robinson", "Walker", "Young", "Allen", "King", "Wright", "Scott", "Torres", "Nguyen",
    "Hill", "Flores", "Green", "Adams", "Nelson", "Baker", "Hall", "Rivera", "Campbell",
    "Mitchell", "Carter", "Roberts", "Burchard",
]
MALE_GIVEN_NAMES = [
    "Seymour", "Abram", "Adolfo", "Alonzo", "Ambrose", "Antonio", "Arnulfo", "Barney", "Benito",
    "Bryce", "Carmine", "Cedric", "Chester", "Cletus", "Dante", "Darrin", "Deon", "Dewitt",
    "Domingo", "Earl", "Elias", "Emery", "Erik", "Federico", "Fidel", "Gerald", "Gustavo",
    "Harley", "Hector", "Irving", "Isaac", "Jamal", "Jarvis", "Jerome", "Kareem", "Kendall",
    "Lamar", "Lionel", "Lucio", "Marcus", "Marty", "Milo", "Nestor", "Norbert", "Omar", "Orval",
    "Pedro", "Quincy", "Rickey", "Rocco", "Rufus", "Sammy", "Stanton", "Terrence", "Tobias",
    "Vance", "Wilbur", "Xavier",
]
FEMALE_GIVEN_NAMES = [
    "Onie", "Moyna", "Arianne", "Adelaide", "Agatha", "Alberta", "Alida", "Annabel", "Ariel",
    "Bernadette", "Bettye", "Candis", "Carolann", "Celestina", "Chantelle", "Corinne", "Dalia",
    "Deloris", "Dorthy", "Edra", "Elinore", "Eloisa", "Emmy", "Ernestina", "Fae", "Flossie",
    "Genevieve", "Georgianna", "Glynda", "Hallie", "Hortensia", "Ilse", "Irma", "Jacinda",
    "Jeanice", "Joelle", "Karine", "Kiara", "Lavonne", "Leota", "Lilia", "Lorine", "Magdalena",
    "Margarette", "Melani", "Mirta", "Nadine", "Nelida", "Ofelia", "Pamella", "Particia",
    "Quiana", "Rosalba", "Sabra", "Shawanna", "Tamekia", "Valene", "Willena", "Yesenia",
]
STREET_SUFFIXES = [
    "Street", "Avenue", "Road", "Lane", "Way", "Union", "Gateway", "Crossing", "Light", "Mill",
    "Rapid", "Heights", "Wall", "Camp", "Fork", "Ramp", "Bypass", "Station", "Manor", "Ville",
    "Knoll", "Estate", "Route", "Run", "Park", "Viaduct", "Arcade", "Well", "Junction",
]
# Massachusetts, like Synthea's default population: (city, ZIP code).
CITIES = [
    ("Boston", "02108"), ("Worcester", "01601"), ("Springfield", "01103"),
    ("Cambridge", "02138"), ("Lowell", "01850"), ("Brockton", "02301"), ("Quincy", "02169"),
    ("Lynn", "01901"), ("New Bedford", "02740"), ("Fall River", "02720"), ("Newton", "02458"),
    ("Lawrence", "01840"), ("Somerville", "02143"), ("Framingham", "01701"),
    ("Haverhill", "01830"), ("Waltham", "02451"), ("Malden", "02148"), ("Brookline", "02445"),
    ("Plymouth", "02360"), ("Medford", "02155"), ("Taunton", "02780"), ("Chicopee", "01013"),
    ("Weymouth", "02188"), ("Revere", "02151"), ("Peabody", "01960"), ("Methuen", "01844"),
    ("Barnstable", "02630"), ("Pittsfield", "01201"), ("Attleboro", "02703"),
    ("Arlington", "02474"), ("Everett", "02149"), ("Salem", "01970"), ("Westfield", "01085"),
    ("Leominster", "01453"), ("Fitchburg", "01420"), ("Beverly", "01915"), ("Holyoke", "01040"),
    ("Marlborough", "01752"), ("Woburn", "01801"), ("Chelsea", "02150"),
]
# fmt: on
