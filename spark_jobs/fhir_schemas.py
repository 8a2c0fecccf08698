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

# The R4 `id` datatype, [A-Za-z0-9\-\.]{1,64}, as a Java regex for Spark's regexp
# functions. Java's \p{Alnum} is ASCII-only like [A-Za-z0-9], and one class test per
# character instead of five: parsing two references per row took 1.29 -> 0.76 s over
# 1.6M rows (warm, noop sink).
FHIR_ID = r"[\p{Alnum}\-.]{1,64}"

S = T.StringType()
D = T.DoubleType()
CORRUPT_RECORD = "_corrupt_record"


def _struct(**fields: T.DataType) -> T.StructType:
    return T.StructType([T.StructField(name, dtype) for name, dtype in fields.items()])


def _resource(**fields: T.DataType) -> T.StructType:
    return T.StructType(
        [
            *[T.StructField(name, dtype) for name, dtype in fields.items()],
            T.StructField(CORRUPT_RECORD, S),
        ]
    )


def _with_meta(**fields: T.DataType) -> T.StructType:
    return _resource(resourceType=S, id=S, meta=_struct(versionId=S, lastUpdated=S), **fields)


CODING = _struct(system=S, code=S, display=S)
CODEABLE_CONCEPT = _struct(coding=T.ArrayType(CODING), text=S)
QUANTITY = _struct(value=D, unit=S, system=S, code=S, comparator=S)
REFERENCE = _struct(reference=S, type=S, identifier=_struct(system=S, value=S))
PERIOD = _struct(start=S, end=S)
DURATION = _struct(value=D, unit=S, system=S, code=S)

# Observation lists only the elements silver (and bench/floor.py) read, narrower than
# the other resources: at ~800k Observations a run, every parsed field is converted,
# copied and compiled for. Keeping a row under 100 nested fields also keeps Spark's
# whole-stage code generation on (spark.sql.codegen.maxFields).
_CODE = _struct(coding=T.ArrayType(_struct(code=S)))
_RANGE_LIMIT = _struct(value=D, unit=S, code=S)
_VALUE_FIELDS = dict(
    valueQuantity=_struct(value=D, unit=S, code=S, comparator=S),
    valueCodeableConcept=_struct(coding=T.ArrayType(CODING)),
    valueString=S,
    valueBoolean=T.BooleanType(),
    valueInteger=T.LongType(),
    dataAbsentReason=_struct(coding=T.ArrayType(_struct(code=S)), text=S),
    interpretation=T.ArrayType(_CODE),
    referenceRange=T.ArrayType(_struct(low=_RANGE_LIMIT, high=_RANGE_LIMIT)),
)

OBSERVATION = _resource(
    id=S,
    status=S,
    category=T.ArrayType(_CODE),
    code=_struct(coding=T.ArrayType(CODING)),
    subject=_struct(reference=S),
    encounter=_struct(reference=S),
    effectiveDateTime=S,
    effectiveInstant=S,
    effectivePeriod=_struct(start=S),
    issued=S,
    component=T.ArrayType(_struct(code=_struct(coding=T.ArrayType(CODING)), **_VALUE_FIELDS)),
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
