"""Explicit Spark schemas for the parts of FHIR R4 resources silver reads.

Parsing bronze JSON with these (`from_json`) is one pass per record, with no
schema inference. Each schema ends with `_corrupt_record`: Spark fills it when
a field has the wrong JSON type (a string where a number belongs, ...), so such
records are flagged instead of silently losing the field.
Only non-identifying elements are listed, except the ones silver hashes or
reduces (Patient.id, identifiers, address, birthDate).
"""

from __future__ import annotations

from pyspark.sql import types as T

S = T.StringType()
D = T.DoubleType()
CORRUPT_RECORD = "_corrupt_record"


def _struct(**fields: T.DataType) -> T.StructType:
    return T.StructType([T.StructField(name, dtype) for name, dtype in fields.items()])


def _with_meta(**fields: T.DataType) -> T.StructType:
    return T.StructType(
        [
            T.StructField("resourceType", S),
            T.StructField("id", S),
            T.StructField("meta", _struct(versionId=S, lastUpdated=S)),
            *[T.StructField(name, dtype) for name, dtype in fields.items()],
            T.StructField(CORRUPT_RECORD, S),
        ]
    )


CODING = _struct(system=S, code=S, display=S)
CODEABLE_CONCEPT = _struct(coding=T.ArrayType(CODING), text=S)
QUANTITY = _struct(value=D, unit=S, system=S, code=S, comparator=S)
REFERENCE = _struct(reference=S, type=S, identifier=_struct(system=S, value=S))
PERIOD = _struct(start=S, end=S)
DURATION = _struct(value=D, unit=S, system=S, code=S)
REFERENCE_RANGE = _struct(low=QUANTITY, high=QUANTITY, type=CODEABLE_CONCEPT, text=S)

_VALUE_FIELDS = dict(
    valueQuantity=QUANTITY,
    valueCodeableConcept=CODEABLE_CONCEPT,
    valueString=S,
    valueBoolean=T.BooleanType(),
    valueInteger=T.LongType(),
    dataAbsentReason=CODEABLE_CONCEPT,
    interpretation=T.ArrayType(CODEABLE_CONCEPT),
    referenceRange=T.ArrayType(REFERENCE_RANGE),
)

OBSERVATION = _with_meta(
    status=S,
    category=T.ArrayType(CODEABLE_CONCEPT),
    code=CODEABLE_CONCEPT,
    subject=REFERENCE,
    encounter=REFERENCE,
    effectiveDateTime=S,
    effectiveInstant=S,
    effectivePeriod=PERIOD,
    issued=S,
    component=T.ArrayType(_struct(code=CODEABLE_CONCEPT, **_VALUE_FIELDS)),
    **_VALUE_FIELDS,
)

_MEDICATION_FIELDS = dict(
    status=S,
    medicationCodeableConcept=CODEABLE_CONCEPT,
    medicationReference=REFERENCE,
    contained=T.ArrayType(_struct(resourceType=S, id=S, code=CODEABLE_CONCEPT)),
    subject=REFERENCE,
    context=REFERENCE,
    encounter=REFERENCE,
)

MEDICATION_STATEMENT = _with_meta(
    effectiveDateTime=S,
    effectivePeriod=PERIOD,
    dateAsserted=S,
    **_MEDICATION_FIELDS,
)

MEDICATION_REQUEST = _with_meta(
    intent=S,
    authoredOn=S,
    dispenseRequest=_struct(
        validityPeriod=PERIOD,
        numberOfRepeatsAllowed=T.LongType(),
        quantity=QUANTITY,
        expectedSupplyDuration=DURATION,
    ),
    **_MEDICATION_FIELDS,
)

PATIENT = _with_meta(
    identifier=T.ArrayType(_struct(system=S, value=S, type=CODEABLE_CONCEPT)),
    gender=S,
    birthDate=S,
    deceasedBoolean=T.BooleanType(),
    deceasedDateTime=S,
    address=T.ArrayType(_struct(use=S, city=S, state=S, postalCode=S, country=S)),
    maritalStatus=CODEABLE_CONCEPT,
    extension=T.ArrayType(
        _struct(url=S, extension=T.ArrayType(_struct(url=S, valueCoding=CODING, valueString=S)))
    ),
)

ENCOUNTER = _with_meta(
    status=S,
    # R4 Encounter.class is one Coding.
    **{"class": CODING},
    type=T.ArrayType(CODEABLE_CONCEPT),
    subject=REFERENCE,
    period=PERIOD,
    reasonCode=T.ArrayType(CODEABLE_CONCEPT),
    hospitalization=_struct(dischargeDisposition=CODEABLE_CONCEPT, admitSource=CODEABLE_CONCEPT),
    serviceProvider=REFERENCE,
)

CONDITION = _with_meta(
    clinicalStatus=CODEABLE_CONCEPT,
    verificationStatus=CODEABLE_CONCEPT,
    category=T.ArrayType(CODEABLE_CONCEPT),
    code=CODEABLE_CONCEPT,
    subject=REFERENCE,
    encounter=REFERENCE,
    onsetDateTime=S,
    onsetPeriod=PERIOD,
    abatementDateTime=S,
    recordedDate=S,
)
