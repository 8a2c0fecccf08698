"""The FHIRPath parser (pure Python): precedence, literals, escapes, errors."""

from __future__ import annotations

import pytest

from spark_jobs.sof.fhirpath import Binary, FhirPathSyntaxError, Index, Invoke, Literal, Variable, parse


def test_and_binds_tighter_than_or_and_comparison_tighter_than_and():
    tree = parse("a = 1 or b and c > 2")
    assert tree == Binary(
        "or",
        Binary("=", Invoke(None, "a"), Literal(1, "Integer")),
        Binary("and", Invoke(None, "b"), Binary(">", Invoke(None, "c"), Literal(2, "Integer"))),
    )


def test_arithmetic_precedence_and_parentheses():
    assert parse("1 + 2 * 3") == Binary(
        "+", Literal(1, "Integer"), Binary("*", Literal(2, "Integer"), Literal(3, "Integer"))
    )
    assert parse("(1 + 2) * 3") == Binary(
        "*", Binary("+", Literal(1, "Integer"), Literal(2, "Integer")), Literal(3, "Integer")
    )


def test_invocations_indexes_variables_and_literals():
    assert parse("name[%i].given.join(', ')") == Invoke(
        Invoke(Index(Invoke(None, "name"), Variable("i")), "given"), "join", (Literal(", ", "String"),)
    )
    assert parse("$this") == Variable("$this")
    assert parse("'it\\'s \\u00e9'") == Literal("it's é", "String")
    assert parse("@2019-07") == Literal("2019-07", "Date")
    assert parse("@2019-07-01T10:00:00Z") == Literal("2019-07-01T10:00:00Z", "DateTime")
    assert parse("@T12:30") == Literal("12:30", "Time")
    assert parse("1.50") == Literal(1.5, "Decimal")
    assert parse("{}") == Literal(None, "Empty")
    assert parse("`div`.exists()") == Invoke(Invoke(None, "div"), "exists", ())


@pytest.mark.parametrize("text", ["@@", "name.", "name.where(", "a ==", "1 +", "name)", "", "'open"])
def test_malformed_expressions_are_syntax_errors(text):
    with pytest.raises(FhirPathSyntaxError):
        parse(text)
