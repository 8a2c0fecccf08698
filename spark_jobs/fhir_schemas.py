"""FHIR text forms the jobs match on, and the column where a parse error is kept.

Silver parses each resource with the explicit schema its ViewDefinition derives
(spark_jobs/sof/); CORRUPT_RECORD is where Spark puts a record whose element has
the wrong JSON type (a string where a number belongs, ...), so such records are
flagged instead of silently losing the element.
"""

from __future__ import annotations

# The R4 `id` datatype, [A-Za-z0-9\-\.]{1,64}, as a Java regex for Spark's regexp
# functions. Java's \p{Alnum} is ASCII-only like [A-Za-z0-9], and one class test per
# character instead of five makes reference parsing faster.
FHIR_ID = r"[\p{Alnum}\-.]{1,64}"

CORRUPT_RECORD = "_corrupt_record"
