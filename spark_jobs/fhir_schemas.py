"""The explicit Spark schema of the parts of an Observation silver reads (the other
resource types are read through silver's own views, include/silver_views/, whose
schemas come from the R4 definitions).

Parsing bronze JSON with it (`from_json`) is one pass per record, with no schema
inference. It ends with `_corrupt_record`: Spark fills it when a field has the wrong
JSON type (a string where a number belongs, ...), so such records are flagged
instead of silently losing the field.
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


CODING = _struct(system=S, code=S, display=S)

# Only the elements silver (and bench/floor.py) read: at ~800k Observations a run,
# every parsed field is converted, copied and compiled for. Keeping a row under 100
# nested fields also keeps Spark's whole-stage code generation on (spark.sql.codegen.maxFields).
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
