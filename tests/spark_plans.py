"""Properties of a DataFrame's executed physical plan, read from its operator tree
rather than its printed text, whose format changes between Spark releases."""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import DataFrame


@dataclass(frozen=True)
class Operator:
    name: str  # e.g. "BroadcastHashJoin", "Generate", "Scan text"
    compiled: bool  # runs inside a whole-stage generated stage, not row by row
    expressions: tuple[str, ...]  # class names of every expression it holds, nested ones too
    columns: frozenset[str]  # the columns those expressions reference


def executed_operators(df: DataFrame) -> list[Operator]:
    """The operators of `df`'s executed plan (the final adaptive plan once it ran)."""
    operators: list[Operator] = []
    _walk(df._jdf.queryExecution().executedPlan(), False, operators)
    return operators


def _walk(node, compiled: bool, out: list[Operator]) -> None:
    name = node.nodeName().strip()
    if name == "AdaptiveSparkPlan":
        return _walk(node.executedPlan(), compiled, out)
    if name.endswith("QueryStage"):
        return _walk(node.plan(), compiled, out)
    if name.startswith("WholeStageCodegen"):
        compiled = True
    elif name == "InputAdapter":  # the boundary below a generated stage
        compiled = False
    else:
        kinds: list[str] = []
        columns: set[str] = set()
        for expression in _items(node.expressions()):
            _expression_tree(expression, kinds, columns)
        out.append(Operator(name, compiled, tuple(kinds), frozenset(columns)))
    for child in _items(node.children()):
        _walk(child, compiled, out)


def _expression_tree(expression, kinds: list[str], columns: set[str]) -> None:
    kind = expression.getClass().getSimpleName()
    kinds.append(kind)
    if kind == "AttributeReference":
        columns.add(expression.name())
    for child in _items(expression.children()):
        _expression_tree(child, kinds, columns)


def _items(seq) -> list:
    return [seq.apply(i) for i in range(seq.size())]
