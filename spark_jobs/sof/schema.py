"""The Spark schema a view reads: only the elements its expressions navigate.

The compiler records each element it reads on the node of the value it reads it
from. Inline (backbone) elements share one node per element path, so a recursive
element (`QuestionnaireResponse.item.item`, a contentReference) has the same
struct at every depth: it is read as raw JSON text and parsed with that node's
struct where a path descends into it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pyspark.sql import types as T

_PRIMITIVE_SPARK_TYPES = {
    "boolean": T.BooleanType(),
    "integer": T.LongType(),
    "positiveInt": T.LongType(),
    "unsignedInt": T.LongType(),
    "decimal": T.DoubleType(),
}


def primitive_spark_type(code: str) -> T.DataType:
    """Spark type of a FHIR primitive: JSON booleans and numbers as such, every
    other primitive (dates included) as its text."""
    return _PRIMITIVE_SPARK_TYPES.get(code, T.StringType())


@dataclass
class Field:
    many: bool
    primitive: T.DataType | None = None  # a primitive element
    node: SchemaNode | None = None  # a complex element
    raw: bool = False  # read as JSON text (a recursive element), parsed where navigated

    def spark_type(self) -> T.DataType:
        if self.primitive is not None:
            element = self.primitive
        elif self.raw or not self.node.fields:
            element = T.StringType()  # no element of it is read: its JSON text
        else:
            element = self.node.struct()
        return T.ArrayType(element) if self.many else element


@dataclass
class SchemaNode:
    fields: dict[str, Field] = field(default_factory=dict)

    def record(self, name: str, spec: Field) -> Field:
        return self.fields.setdefault(name, spec)

    def struct(self) -> T.StructType:
        return T.StructType(
            [T.StructField(name, self.fields[name].spark_type()) for name in sorted(self.fields)]
        )


@dataclass
class SchemaRegistry:
    """The root node of the view's resource and one node per inline element path."""

    root: SchemaNode = field(default_factory=SchemaNode)
    inline: dict[str, SchemaNode] = field(default_factory=dict)

    def node_for(self, element_path: str) -> SchemaNode:
        return self.inline.setdefault(element_path, SchemaNode())

    def signature(self) -> str:
        return self.root.struct().simpleString() + "|".join(
            f"{path}={node.struct().simpleString()}" for path, node in sorted(self.inline.items())
        )
