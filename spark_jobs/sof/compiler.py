"""FHIRPath syntax trees -> Spark Columns, typed by the R4 element definitions.

A value is a FHIRPath collection held as one Column: a scalar (null = empty) where
R4 says the path has at most one item, an array where it may have more. Elements
read are recorded in the schema registry, so the resource is parsed once with
only what the view needs. Everything runs as Spark expressions (higher-order
functions over arrays); nothing evaluates per row in Python.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from pyspark.sql import Column
from pyspark.sql import functions as F

from spark_jobs.fhir_schemas import FHIR_ID
from spark_jobs.sof import r4
from spark_jobs.sof.fhirpath import (
    Binary,
    FhirPathSyntaxError,
    Index,
    Invoke,
    Literal,
    Negate,
    Variable,
    parse,
)
from spark_jobs.sof.schema import Field, SchemaNode, SchemaRegistry, primitive_spark_type

# A reference's type and id: relative ("Patient/1"), absolute ("http://x/fhir/Patient/1")
# or versioned ("Patient/1/_history/2"); `urn:uuid:` references resolve to the uuid.
REFERENCE_KEY = rf"^(?:.*/)?([A-Z][A-Za-z]+)/({FHIR_ID})(?:/_history/[^/]+)?$"
UUID_REFERENCE = rf"^urn:uuid:({FHIR_ID})$"


def typed_reference_key(resource_type: str) -> str:
    """REFERENCE_KEY's id of one type: one regex, not the type and the id extracted apart."""
    return rf"(?:^|/){resource_type}/({FHIR_ID})(?:/_history/[^/]+)?$"


class ViewCompileError(ValueError):
    """A view or expression that cannot run; the message names where."""


@dataclass(frozen=True)
class Value:
    col: Column | None
    many: bool
    type: (
        str  # a FHIR type ("HumanName", "string"), an inline element path ("Patient.contact"), or "System.X"
    )
    node: SchemaNode | None = None  # where elements read from a complex value are recorded
    choice: tuple | None = None  # (owner value, element) of a choice element awaiting ofType()
    through: frozenset[str] = frozenset()  # element paths and types the value was read through (PHI policy)
    patient_key: bool = False  # a Patient's id: hashed on output
    # (collection, its first item found without a lambda): `where(<element> = '<text>')` then
    # first() as an array_position, which Spark compiles; a filter's lambda runs row by row.
    first_item: tuple[Column, Column] | None = None


@dataclass(frozen=True)
class Env:
    constants: dict[str, Value]
    row_index: Column
    resource: Value | None = None  # %resource: the resource the view reads


def system_type(value: Value) -> str | None:
    """Boolean, String, Integer, Decimal, Date, DateTime, Time; None for complex values."""
    if value.type.startswith("System."):
        return value.type[len("System.") :]
    return r4.primitive_system_type(value.type)


def empty_array(array: Column) -> Column:
    """An empty array of `array`'s element type."""
    return F.slice(array, 1, 0)


def as_array(value: Value) -> Column:
    """The value as a non-null array."""
    if value.many:
        return F.coalesce(value.col, F.array())
    return F.filter(F.array(value.col), lambda item: item.isNotNull())


class Compiler:
    def __init__(self, registry: SchemaRegistry, *, strict: bool = True, resource_key: Column | None = None):
        self.registry = registry
        self.strict = strict
        # The viewed resource's key, when the runner knows it better than its `id`.
        self.resource_key = resource_key

    # --- entry points -------------------------------------------------------
    def compile(self, text: str, focus: Value, env: Env) -> Value:
        try:
            tree = parse(text)
        except FhirPathSyntaxError as exc:
            raise ViewCompileError(f"invalid FHIRPath: {exc}") from None
        value = self.eval(tree, focus, env)
        if value.choice is not None:
            raise ViewCompileError(
                f"{text!r} ends on choice element {value.choice[1].path}[x]: add .ofType(<type>)"
            )
        return value

    def single(self, value: Value, text: str) -> Column:
        """The one item of a collection; a run-time error when there are several."""
        if not value.many:
            return value.col
        message = f"FHIRPath {text!r} returned more than one value where one is expected"
        return F.when(F.size(value.col) > 1, F.raise_error(F.lit(message))).otherwise(
            F.try_element_at(value.col, F.lit(1))
        )

    # --- evaluation -----------------------------------------------------------
    def eval(self, node, focus: Value, env: Env) -> Value:
        if isinstance(node, Literal):
            return Value(F.lit(node.value), False, f"System.{node.type}")
        if isinstance(node, Variable):
            return self.variable(node.name, focus, env)
        if isinstance(node, Invoke):
            if node.args is None:
                if node.target is None and node.name == focus.type and r4.is_resource_type(node.name):
                    return focus  # `Patient.name` on a Patient
                owner = self.eval(node.target, focus, env) if node.target is not None else focus
                return self.navigate(owner, node.name)
            owner = self.eval(node.target, focus, env) if node.target is not None else focus
            return self.function(owner, node.name, node.args, focus, env)
        if isinstance(node, Index):
            owner = self.eval(node.target, focus, env)
            index = self.eval(node.index, focus, env)
            if system_type(index) != "Integer":
                raise ViewCompileError("an index must be an integer")
            return replace(
                owner, col=F.try_element_at(as_array(owner), index.col + 1), many=False, choice=None
            )
        if isinstance(node, Negate):
            operand = self.eval(node.operand, focus, env)
            return Value(-self.single(operand, "-"), False, operand.type)
        if isinstance(node, Binary):
            return self.binary(node, focus, env)
        raise ViewCompileError(f"unsupported expression {node!r}")

    def variable(self, name: str, focus: Value, env: Env) -> Value:
        if name == "$this":
            return focus
        if name == "rowIndex":
            return Value(env.row_index, False, "System.Integer")
        if name in ("resource", "rootResource") and env.resource is not None:
            return env.resource
        if name in env.constants:
            return env.constants[name]
        raise ViewCompileError(f"undefined constant %{name}")

    def empty(self) -> Value:
        return Value(F.lit(None), False, "System.Empty")

    # --- navigation -------------------------------------------------------------
    def navigate(self, owner: Value, name: str) -> Value:
        if owner.choice is not None:
            raise ViewCompileError(
                f"choice element {owner.choice[1].path}[x] needs .ofType(<type>) before .{name}"
            )
        if owner.node is None:
            if owner.type == "System.Empty":
                return owner
            raise ViewCompileError(f"{owner.type} has no element {name!r}")
        element = r4.element(owner.type, name)
        if element is None:
            if self.strict:
                raise ViewCompileError(f"FHIR R4 {owner.type} has no element {name!r}")
            return self.empty()
        if element.choice:
            return Value(
                None,
                owner.many or element.many,
                owner.type,
                None,
                choice=(owner, element),
                through=owner.through,
            )
        return self.field(owner, name, element, element.types[0] if element.types else "")

    def field(self, owner: Value, json_name: str, element: r4.Element, type_code: str) -> Value:
        """The value of JSON property `json_name` of `owner`, an element of `type_code`."""
        parse_struct = None
        if element.ref:
            node = self.registry.node_for(element.ref)
            spec = owner.node.record(json_name, Field(element.many, node=node, raw=True))
            value_type, parse_struct = element.ref, node.struct()
        elif type_code in r4.INLINE_TYPES:
            node = self.registry.node_for(element.path)
            spec = owner.node.record(json_name, Field(element.many, node=node))
            value_type = element.path
        elif r4.primitive_system_type(type_code) is not None:
            spec = owner.node.record(
                json_name, Field(element.many, primitive=primitive_spark_type(type_code))
            )
            node, value_type = None, type_code
        elif r4.is_type(type_code):
            spec = owner.node.record(json_name, Field(element.many, node=SchemaNode()))
            node, value_type = spec.node, type_code
        else:
            raise ViewCompileError(f"{element.path} is a {type_code}, which views cannot read")
        if spec.raw != bool(element.ref):
            raise ViewCompileError(f"{element.path} is read both as recursive and as plain element")

        def read(struct: Column) -> Column:
            column = struct.getField(json_name)
            if parse_struct is None:
                return column
            if element.many:
                return F.transform(column, lambda text: F.from_json(text, parse_struct))
            return F.from_json(column, parse_struct)

        through = owner.through | {element.path, value_type}
        if not owner.many:
            return Value(read(owner.col), element.many, value_type, node, through=through)
        if element.many:
            col = F.flatten(F.transform(owner.col, lambda item: F.coalesce(read(item), F.array())))
        else:
            col = F.filter(F.transform(owner.col, read), lambda item: item.isNotNull())
        return Value(col, True, value_type, node, through=through)

    # --- functions ---------------------------------------------------------------
    def function(self, owner: Value, name: str, args: tuple, focus: Value, env: Env) -> Value:
        handler = getattr(self, f"fn_{name}", None)
        if handler is None:
            raise ViewCompileError(f"unsupported FHIRPath function {name}()")
        return handler(owner, args, env)

    def _arity(self, name: str, args: tuple, allowed: tuple[int, ...]) -> None:
        if len(args) not in allowed:
            raise ViewCompileError(
                f"{name}() takes {' or '.join(map(str, allowed))} argument(s), got {len(args)}"
            )

    def _item(self, owner: Value, item: Column) -> Value:
        return replace(owner, col=item, many=False)

    def _boolean(self, value: Value, what: str) -> Column:
        kind = system_type(value)
        if kind not in ("Boolean", "Empty"):
            raise ViewCompileError(f"{what} must be boolean, not {value.type}")
        return self.single(value, what)

    def fn_where(self, owner: Value, args: tuple, env: Env) -> Value:
        self._arity("where", args, (1,))
        if owner.choice is not None:
            raise ViewCompileError("where() on a choice element needs .ofType(<type>) first")

        def keep(item: Column) -> Column:
            return self._boolean(self.eval(args[0], self._item(owner, item), env), "where() criteria")

        if owner.many:
            filtered = F.filter(owner.col, keep)
            first = self._first_equal(owner, args[0])
            return replace(owner, col=filtered, first_item=None if first is None else (filtered, first))
        return replace(owner, col=F.when(keep(owner.col), owner.col), first_item=None)

    def _first_equal(self, owner: Value, criteria) -> Column | None:
        """The first item of `owner` whose text element equals a text literal, by position."""
        if not (isinstance(criteria, Binary) and criteria.op == "=") or owner.node is None:
            return None
        for path, literal in ((criteria.left, criteria.right), (criteria.right, criteria.left)):
            if not (isinstance(path, Invoke) and path.target is None and path.args is None):
                continue
            element = r4.element(owner.type, path.name)
            one_text = (
                element is not None
                and not (element.many or element.choice or element.ref)
                and len(element.types) == 1
                and r4.primitive_system_type(element.types[0]) == "String"
            )
            if one_text and isinstance(literal, Literal) and literal.type == "String":
                position = F.array_position(owner.col.getField(path.name), literal.value)
                return F.get(owner.col, position - 1)
        return None

    def fn_exists(self, owner: Value, args: tuple, env: Env) -> Value:
        self._arity("exists", args, (0, 1))
        owner = self.resolve_choice(owner)
        if args:
            owner = self.fn_where(owner, args, env)
        present = F.coalesce(F.size(owner.col) > 0, F.lit(False)) if owner.many else owner.col.isNotNull()
        return Value(present, False, "System.Boolean")

    def fn_empty(self, owner: Value, args: tuple, env: Env) -> Value:
        self._arity("empty", args, (0,))
        return Value(~self.fn_exists(owner, args, env).col, False, "System.Boolean")

    def fn_not(self, owner: Value, args: tuple, env: Env) -> Value:
        self._arity("not", args, (0,))
        return Value(~self._boolean(owner, "not()"), False, "System.Boolean")

    def fn_first(self, owner: Value, args: tuple, env: Env) -> Value:
        self._arity("first", args, (0,))
        if not owner.many:
            return owner
        if owner.first_item is not None and owner.first_item[0] is owner.col:
            return replace(owner, col=owner.first_item[1], many=False, first_item=None)
        return replace(owner, col=F.try_element_at(owner.col, F.lit(1)), many=False)

    def fn_last(self, owner: Value, args: tuple, env: Env) -> Value:
        self._arity("last", args, (0,))
        return replace(owner, col=F.try_element_at(owner.col, F.lit(-1)), many=False) if owner.many else owner

    def fn_count(self, owner: Value, args: tuple, env: Env) -> Value:
        self._arity("count", args, (0,))
        return Value(F.size(as_array(self.resolve_choice(owner))).cast("long"), False, "System.Integer")

    def fn_join(self, owner: Value, args: tuple, env: Env) -> Value:
        self._arity("join", args, (0, 1))
        if args and not (isinstance(args[0], Literal) and args[0].type == "String"):
            raise ViewCompileError("join() takes a string literal separator")
        if system_type(owner) not in ("String", "Empty"):
            raise ViewCompileError(f"join() joins strings, not {owner.type}")
        joined = F.array_join(as_array(owner), args[0].value if args else "")
        return Value(joined, False, "System.String", through=owner.through)

    def fn_extension(self, owner: Value, args: tuple, env: Env) -> Value:
        self._arity("extension", args, (1,))
        url = self.eval(args[0], owner, env)
        if system_type(url) != "String":
            raise ViewCompileError("extension() takes a url string")
        extensions = self.navigate(owner, "extension")
        if extensions.type == "System.Empty":
            return extensions
        matches = lambda item: self.navigate(self._item(extensions, item), "url").col == url.col  # noqa: E731
        return replace(extensions, col=F.filter(extensions.col, matches))

    def fn_ofType(self, owner: Value, args: tuple, env: Env) -> Value:  # noqa: N802 (FHIRPath's name)
        self._arity("ofType", args, (1,))
        wanted = _type_name(args[0])
        if owner.choice is None and owner.type in ("Resource", "DomainResource") and owner.node is not None:
            return self.contained_of_type(owner, wanted)
        if owner.choice is None:
            return owner if owner.type == wanted or system_type(owner) == wanted else self.empty()
        choice_owner, element = owner.choice
        if wanted not in element.types:
            return self.empty()
        return self.field(
            choice_owner, element.path.rsplit(".", 1)[1] + wanted[0].upper() + wanted[1:], element, wanted
        )

    def contained_of_type(self, owner: Value, wanted: str) -> Value:
        """Resources of type `wanted` among `owner` (e.g. `contained`), read with that type's elements."""
        if not r4.is_resource_type(wanted):
            raise ViewCompileError(f"ofType({wanted}): {wanted} is not a FHIR R4 resource type")
        owner.node.record("resourceType", Field(False, primitive=primitive_spark_type("code")))
        if owner.many:
            col = F.filter(owner.col, lambda item: item.getField("resourceType") == wanted)
        else:
            col = F.when(owner.col.getField("resourceType") == wanted, owner.col)
        return replace(owner, col=col, type=wanted, through=owner.through | {f"contained:{wanted}"})

    def resolve_choice(self, owner: Value) -> Value:
        """A choice element used as a whole (exists(), count()): its present typed fields."""
        if owner.choice is None:
            return owner
        parts = [as_array(self.fn_ofType(owner, (Invoke(None, t),), None)) for t in owner.choice[1].types]
        present = [F.size(part) > 0 for part in parts]
        any_present = present[0]
        for flag in present[1:]:
            any_present = any_present | flag
        return Value(F.when(any_present, F.array(F.lit(True))).otherwise(F.array()), True, "System.Boolean")

    def fn_getResourceKey(self, owner: Value, args: tuple, env: Env) -> Value:  # noqa: N802
        self._arity("getResourceKey", args, (0,))
        if not r4.is_resource_type(owner.type):
            raise ViewCompileError(f"getResourceKey() applies to a resource, not {owner.type}")
        key = self.navigate(owner, "id").col
        if self.resource_key is not None and owner.node is self.registry.root:
            key = self.resource_key
        return Value(key, False, "System.String", patient_key=owner.type == "Patient")

    def fn_getReferenceKey(self, owner: Value, args: tuple, env: Env) -> Value:  # noqa: N802
        self._arity("getReferenceKey", args, (0, 1))
        if owner.type == "System.Empty":
            return owner
        if owner.type != "Reference":
            raise ViewCompileError(f"getReferenceKey() applies to a Reference, not {owner.type}")
        wanted = _type_name(args[0]) if args else None
        references = self.navigate(owner, "reference")

        def key(reference: Column) -> Column:
            if wanted is not None:
                typed = F.nullif(F.regexp_extract(reference, typed_reference_key(wanted), 1), F.lit(""))
                if wanted != "Patient":
                    return typed
                # A Bundle-internal `urn:uuid:` reference stays whole: silver resolves it against
                # the Bundle's entries before hashing; elsewhere it hashes to nothing.
                return F.coalesce(typed, F.when(reference.rlike(UUID_REFERENCE), reference))
            relative = F.nullif(F.regexp_extract(reference, REFERENCE_KEY, 2), F.lit(""))
            uuid = F.nullif(F.regexp_extract(reference, UUID_REFERENCE, 1), F.lit(""))
            return F.coalesce(relative, uuid)

        if references.many:
            col = F.filter(F.transform(references.col, key), lambda item: item.isNotNull())
        else:
            col = key(references.col)
        # Untyped, a key may be a Patient's: the PHI policy refuses it as a raw reference.
        through = owner.through if wanted else owner.through | {"Reference.reference"}
        return Value(col, references.many, "System.String", through=through, patient_key=wanted == "Patient")

    def fn_lowBoundary(self, owner: Value, args: tuple, env: Env) -> Value:  # noqa: N802
        return self._boundary(owner, args, low=True)

    def fn_highBoundary(self, owner: Value, args: tuple, env: Env) -> Value:  # noqa: N802
        return self._boundary(owner, args, low=False)

    def _boundary(self, owner: Value, args: tuple, *, low: bool) -> Value:
        from spark_jobs.sof.boundary import boundary

        self._arity("lowBoundary" if low else "highBoundary", args, (0,))
        kind = system_type(owner)
        if kind == "Empty":
            return owner
        return Value(boundary(self.single(owner, "boundary"), kind, low=low), False, owner.type)

    # --- operators -------------------------------------------------------------------
    def binary(self, node: Binary, focus: Value, env: Env) -> Value:
        left = self.resolve_choice_or_fail(self.eval(node.left, focus, env), node.op)
        right = self.resolve_choice_or_fail(self.eval(node.right, focus, env), node.op)
        op = node.op
        if op in ("and", "or", "xor", "implies"):
            a, b = self._boolean(left, f"'{op}' operand"), self._boolean(right, f"'{op}' operand")
            result = {"and": a & b, "or": a | b, "xor": a != b, "implies": ~a | b}[op]
            return Value(result, False, "System.Boolean")
        if op == "|":
            union = F.array_distinct(F.concat(as_array(left), as_array(right)))
            return Value(union, True, left.type, left.node, through=left.through | right.through)
        if op in ("in", "contains"):
            item, collection = (left, right) if op == "in" else (right, left)
            return Value(
                F.array_contains(as_array(collection), self.single(item, op)), False, "System.Boolean"
            )
        a, b = self.single(left, op), self.single(right, op)
        if op in ("=", "!=", "<", "<=", ">", ">=", "~", "!~"):
            comparisons = {
                "=": a == b,
                "!=": a != b,
                "~": a.eqNullSafe(b),
                "!~": ~a.eqNullSafe(b),
                "<": a < b,
                "<=": a <= b,
                ">": a > b,
                ">=": a >= b,
            }
            return Value(comparisons[op], False, "System.Boolean")
        return self.arithmetic(op, left, right, a, b)

    def resolve_choice_or_fail(self, value: Value, op: str) -> Value:
        if value.choice is not None:
            raise ViewCompileError(
                f"choice element {value.choice[1].path}[x] needs .ofType(<type>) before '{op}'"
            )
        return value

    def arithmetic(self, op: str, left: Value, right: Value, a: Column, b: Column) -> Value:
        kinds = {system_type(left), system_type(right)}
        if op == "&" or (op == "+" and kinds <= {"String", "Empty"}):
            if op == "&":
                a, b = F.coalesce(a, F.lit("")), F.coalesce(b, F.lit(""))
            return Value(F.concat(a, b), False, "System.String", through=left.through | right.through)
        if not kinds <= {"Integer", "Decimal", "Empty"}:
            raise ViewCompileError(f"'{op}' needs numbers, not {left.type} and {right.type}")
        integer = kinds <= {"Integer", "Empty"}
        if op == "/":
            return Value(F.try_divide(a.cast("double"), b.cast("double")), False, "System.Decimal")
        if op == "div":
            return Value(F.floor(F.try_divide(a, b)).cast("long"), False, "System.Integer")
        if op == "mod":
            return Value(F.try_mod(a, b), False, left.type)
        result = {"+": F.try_add(a, b), "-": F.try_subtract(a, b), "*": F.try_multiply(a, b)}[op]
        return Value(result, False, "System.Integer" if integer else "System.Decimal")


def _type_name(node) -> str:
    """The type named by an ofType()/getReferenceKey() argument: `Quantity`, `FHIR.Quantity`."""
    if isinstance(node, Invoke) and node.args is None:
        if node.target is None:
            return node.name
        if (
            isinstance(node.target, Invoke)
            and node.target.target is None
            and node.target.name in ("FHIR", "System")
        ):
            return node.name
    raise ViewCompileError(f"expected a type name, got {node!r}")
