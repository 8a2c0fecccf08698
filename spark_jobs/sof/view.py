"""A ViewDefinition -> Spark expressions per resource: how many rows it has, and
each output column of row i.

`column`s make one row, a `forEach`/`forEachOrNull`/`repeat` makes one set per item
of its collection, nested `select`s are crossed with their parent's row, `unionAll`
concatenates branches with the same columns. A resource's positions are exploded
once and each row is built from its position, so a view whose iterations hold only
columns compiles without lambdas (Spark runs lambdas row by row, outside whole-stage
codegen); an iteration holding iterations builds its rows as an array. The view is
checked as a whole before any data is read; an error names the view's path to the
bad part.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from spark_jobs.fhir_schemas import CORRUPT_RECORD
from spark_jobs.sof import r4
from spark_jobs.sof.compiler import Compiler, Env, Value, ViewCompileError, as_array, empty_array, system_type
from spark_jobs.sof.schema import SchemaRegistry

VIEW_DEFINITION_URL = "http://hl7.org/fhir/uv/sql-on-fhir/StructureDefinition/ViewDefinition"
DEFAULT_REPEAT_DEPTH = 32
POSITION = "_view_position"  # the exploded row position CompiledView.columns read
COLUMN_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
SELECT_KEYS = {"column", "select", "forEach", "forEachOrNull", "repeat", "unionAll", "description"}
COLUMN_KEYS = {"name", "path", "collection", "type", "description", "tag"}
# Metadata elements a runner may ignore: views written for other runners run unchanged.
VIEW_KEYS = {
    "resourceType", "resource", "select", "where", "constant", "name", "title", "status", "description",
    "text", "fhirVersion", "meta", "url", "id", "identifier", "version", "experimental", "publisher",
    "contact", "useContext", "copyright", "date", "extension", "profile", "language", "implicitRules",
}  # fmt: skip


@dataclass(frozen=True)
class CompiledView:
    resource: str
    columns: tuple[str, ...]
    schema: object  # StructType of the resource fields the view reads
    count: Column  # the rows of the parsed resource column `resource`
    # The item each iteration is at in row POSITION, named: computed once per row, so
    # the columns that read it do not each pick it out of its collection again.
    items: tuple[Column, ...]
    fields: tuple[Column, ...]  # the output columns of row POSITION, named (they read `items`)
    where: Column | None
    values: dict[str, list[Value]]  # each output column's values (several under unionAll), for the PHI policy


@dataclass(frozen=True)
class RowSet:
    """A select's rows of one resource: how many, and row i's columns (i from 0)."""

    names: tuple[str, ...]
    count: Column
    # row_at(i, bind): row i's columns; `bind` turns the iterated item of a row into
    # what its columns read (a column computed once per row, or the item itself in a lambda).
    row_at: Callable[[Column, Callable[[Column], Column]], dict[str, Column]]
    single: bool = False  # always exactly one row

    def array(self) -> Column:
        """The rows as an array of structs."""
        if self.single:
            return F.array(_struct(self.row_at(F.lit(0), _inline)))
        return F.transform(_positions(self.count), lambda i: _struct(self.row_at(i, _inline)))


def _inline(item: Column) -> Column:
    return item


def _struct(row: dict[str, Column]) -> Column:
    return F.struct(*[col.alias(name) for name, col in row.items()])


def _positions(count: Column) -> Column:
    """[0, count); `sequence` alone counts down when count is 0."""
    return F.when(count > 0, F.sequence(F.lit(0), count - 1)).otherwise(F.array().cast("array<int>"))


def _array_rows(rows: Column, names: tuple[str, ...]) -> RowSet:
    def row_at(i: Column, bind) -> dict[str, Column]:
        row = bind(F.get(rows, i))
        return {name: row[name] for name in names}

    return RowSet(names, F.size(rows), row_at)


class _ViewCompiler:
    def __init__(
        self,
        view: dict,
        registry: SchemaRegistry,
        *,
        strict: bool,
        repeat_depth: int,
        resource_key: Column | None,
    ):
        self.view = view
        self.compiler = Compiler(registry, strict=strict, resource_key=resource_key)
        self.registry = registry
        self.repeat_depth = repeat_depth
        self.values: dict[str, list[Value]] = {}

    def compile(self) -> CompiledView:
        view = self.view
        resource = view["resource"]
        root = Value(F.col("resource"), False, resource, self.registry.root)
        env = Env(self.constants(view.get("constant", [])), F.lit(0), root)
        where = None
        for index, clause in enumerate(view.get("where", [])):
            here = f"where[{index}]"
            if not isinstance(clause, dict) or not isinstance(clause.get("path"), str):
                raise ViewCompileError(f"{here}: a where clause needs a 'path' string")
            value = self.expression(clause["path"], root, env, f"{here}.path")
            if system_type(value) not in ("Boolean", "Empty"):
                raise ViewCompileError(f"{here}.path: {clause['path']!r} is {value.type}, not boolean")
            condition = F.coalesce(self.compiler.single(value, clause["path"]), F.lit(False))
            where = condition if where is None else where & condition
        rows = self.select_list(view["select"], root, env, "select")
        items: dict[str, Column] = {}

        def bind(item: Column) -> Column:
            name = f"_view_item_{len(items)}"
            items[name] = item
            return F.col(name)

        fields = tuple(col.alias(name) for name, col in rows.row_at(F.col(POSITION), bind).items())
        return CompiledView(
            resource,
            rows.names,
            self.registry.root.struct(),
            rows.count,
            tuple(col.alias(name) for name, col in items.items()),
            fields,
            where,
            self.values,
        )

    def constants(self, constants) -> dict[str, Value]:
        if not isinstance(constants, list):
            raise ViewCompileError("constant: must be a list")
        values = {}
        for index, constant in enumerate(constants):
            here = f"constant[{index}]"
            name = constant.get("name") if isinstance(constant, dict) else None
            typed = [key for key in (constant or {}) if key.startswith("value")]
            if not isinstance(name, str) or len(typed) != 1:
                raise ViewCompileError(f"{here}: needs a 'name' and exactly one value[x]")
            fhir_type = typed[0][len("value") :]
            fhir_type = fhir_type[0].lower() + fhir_type[1:]
            if r4.primitive_system_type(fhir_type) is None:
                raise ViewCompileError(f"{here}: {typed[0]} is not a primitive FHIR type")
            values[name] = Value(F.lit(constant[typed[0]]), False, fhir_type)
        return values

    def expression(self, text, focus: Value, env: Env, here: str) -> Value:
        if not isinstance(text, str):
            raise ViewCompileError(f"{here}: expected a FHIRPath string, got {text!r}")
        try:
            return self.compiler.compile(text, focus, env)
        except ViewCompileError as exc:
            raise ViewCompileError(f"{here}: {exc}") from None

    # --- selects ---------------------------------------------------------------
    def select_list(self, selects, focus: Value, env: Env, here: str) -> RowSet:
        if not isinstance(selects, list) or not selects:
            raise ViewCompileError(f"{here}: must be a non-empty list")
        parts = [self.select(item, focus, env, f"{here}[{index}]") for index, item in enumerate(selects)]
        return self.cross(parts, here)

    def select(self, select, focus: Value, env: Env, here: str) -> RowSet:
        if not isinstance(select, dict):
            raise ViewCompileError(f"{here}: must be an object")
        unknown = set(select) - SELECT_KEYS
        if unknown:
            raise ViewCompileError(f"{here}: unknown element(s) {sorted(unknown)}")
        iterators = [key for key in ("forEach", "forEachOrNull", "repeat") if key in select]
        if len(iterators) > 1:
            raise ViewCompileError(f"{here}: use one of forEach, forEachOrNull, repeat")
        if not iterators:
            return self.select_body(select, focus, env, here)
        kind = iterators[0]
        items = (
            self.repeat_items(select, focus, env, here)
            if kind == "repeat"
            else self.items(select, kind, focus, env, here)
        )

        def item_value(item: Column) -> Value:
            return replace(items, col=item, many=False)  # keeps what it was read through (PHI policy)

        def body(item: Column, index: Column) -> RowSet:
            return self.select_body(select, item_value(item), Env(env.constants, index, env.resource), here)

        collection = F.coalesce(items.col, F.array()) if items.many else None
        first = F.get(collection, 0) if items.many else items.col
        probe = body(first, F.lit(0))
        if probe.single:
            if items.many:
                count, item_at = F.size(collection), lambda i: F.get(collection, i)
            else:
                count, item_at = F.when(items.col.isNull(), 0).otherwise(1), lambda i: items.col
            if kind == "forEachOrNull":
                count = F.greatest(count, F.lit(1))  # no item: one row of nulls
            return RowSet(
                probe.names,
                count,
                lambda i, bind: body(bind(item_at(i)), i).row_at(F.lit(0), bind),
                single=kind == "forEachOrNull" and not items.many,  # at most one item: one row
            )
        collection = as_array(items)
        rows = F.flatten(F.transform(collection, lambda item, index: body(item, index).array()))
        if kind == "forEachOrNull":
            no_item = item_value(F.try_element_at(collection, F.lit(1)))  # typed null
            rows = F.when(
                F.size(collection) == 0,
                self.select_body(select, no_item, Env(env.constants, F.lit(0), env.resource), here).array(),
            ).otherwise(rows)
        return _array_rows(rows, probe.names)

    def items(self, select: dict, kind: str, focus: Value, env: Env, here: str) -> Value:
        value = self.expression(select[kind], focus, env, f"{here}.{kind}")
        if value.type == "System.Empty":
            raise ViewCompileError(f"{here}.{kind}: {select[kind]!r} is always empty")
        return value

    def repeat_items(self, select: dict, focus: Value, env: Env, here: str) -> Value:
        """Every node reached by repeatedly following the repeat paths, depth first
        (a node, then its children by the first path, then by the second...)."""
        paths = select["repeat"]
        if not isinstance(paths, list) or not paths or not all(isinstance(p, str) for p in paths):
            raise ViewCompileError(f"{here}.repeat: must be a non-empty list of FHIRPath strings")
        first = [self.expression(p, focus, env, f"{here}.repeat[{i}]") for i, p in enumerate(paths)]
        present = [(i, v) for i, v in enumerate(first) if v.type != "System.Empty"]
        if not present:
            return first[0]
        node_type, node_schema = present[0][1].type, present[0][1].node
        if any(v.type != node_type for _, v in present):
            raise ViewCompileError(
                f"{here}.repeat: the paths reach different types {sorted({v.type for _, v in present})}"
            )

        def keyed(values: list[tuple[int, Value]], key: Column | None) -> Column:
            parts = []
            for path_index, value in values:
                parts.append(F.transform(as_array(value), _tagging(path_index, key)))
            return F.concat(*parts) if len(parts) > 1 else parts[0]

        def children(entry: Column) -> Column:
            node = Value(entry["node"], False, node_type, node_schema)
            values = []
            for i, p in enumerate(paths):
                value = self.expression(p, node, env, f"{here}.repeat[{i}]")
                if value.type not in (node_type, "System.Empty"):
                    raise ViewCompileError(
                        f"{here}.repeat[{i}]: {p!r} leads from {node_type} to {value.type}"
                    )
                if value.type != "System.Empty":
                    values.append((i, value))
            return keyed(values, entry["key"])

        level = keyed(present, None)
        state = F.struct(level.alias("frontier"), empty_array(level).alias("found"))
        state = F.aggregate(
            F.sequence(F.lit(1), F.lit(self.repeat_depth)),
            state,
            lambda acc, _: F.struct(
                F.flatten(F.transform(acc["frontier"], children)).alias("frontier"),
                F.concat(acc["found"], acc["frontier"]).alias("found"),
            ),
        )
        message = f"{here}.repeat: data nests deeper than the repeat depth limit ({self.repeat_depth})"
        nodes = F.when(F.size(state["frontier"]) > 0, F.raise_error(F.lit(message))).otherwise(
            F.transform(F.sort_array(state["found"]), lambda entry: entry["node"])
        )
        return Value(nodes, True, node_type, node_schema)

    def select_body(self, select: dict, focus: Value, env: Env, here: str) -> RowSet:
        parts = []
        if "column" in select:
            parts.append(self.columns(select["column"], focus, env, f"{here}.column"))
        if "select" in select:
            parts.append(self.select_list(select["select"], focus, env, f"{here}.select"))
        if "unionAll" in select:
            parts.append(self.union_all(select["unionAll"], focus, env, f"{here}.unionAll"))
        if not parts:
            raise ViewCompileError(f"{here}: needs column, select or unionAll")
        return self.cross(parts, here)

    def columns(self, columns, focus: Value, env: Env, here: str) -> RowSet:
        if not isinstance(columns, list) or not columns:
            raise ViewCompileError(f"{here}: must be a non-empty list")
        fields: dict[str, Column] = {}
        for index, column in enumerate(columns):
            at = f"{here}[{index}]"
            if not isinstance(column, dict):
                raise ViewCompileError(f"{at}: must be an object")
            unknown = set(column) - COLUMN_KEYS
            if unknown:
                raise ViewCompileError(f"{at}: unknown element(s) {sorted(unknown)}")
            name = column.get("name")
            if not isinstance(name, str) or not COLUMN_NAME.match(name):
                raise ViewCompileError(f"{at}.name: {name!r} is not a valid column name")
            if name in fields:
                raise ViewCompileError(f"{here}: column name(s) {[name]} used twice")
            value = self.expression(column.get("path"), focus, env, f"{at}.path")
            if column.get("collection") is True:
                fields[name] = as_array(value)
            else:
                fields[name] = self.compiler.single(value, column["path"])
            self.values.setdefault(name, []).append(replace(value, many=column.get("collection") is True))
        return RowSet(tuple(fields), F.lit(1), lambda _i, _bind: fields, single=True)

    def union_all(self, branches, focus: Value, env: Env, here: str) -> RowSet:
        if not isinstance(branches, list) or not branches:
            raise ViewCompileError(f"{here}: must be a non-empty list")
        compiled = [self.select(branch, focus, env, f"{here}[{i}]") for i, branch in enumerate(branches)]
        names = compiled[0].names
        for index, other in enumerate(compiled[1:], start=1):
            if other.names != names:
                raise ViewCompileError(
                    f"{here}[{index}]: columns {list(other.names)} differ from the first "
                    f"branch's {list(names)}"
                )
        starts = [F.lit(0)]  # each branch's first position
        for branch in compiled[:-1]:
            starts.append(starts[-1] + branch.count)

        def row_at(i: Column, bind) -> dict[str, Column]:
            rows = [branch.row_at(i - start, bind) for branch, start in zip(compiled, starts, strict=True)]
            if len(rows) == 1:
                return rows[0]
            picked = {}
            for name in names:
                choice = F.when(i < starts[1], rows[0][name])
                for next_start, row in zip(starts[2:], rows[1:-1], strict=True):
                    choice = choice.when(i < next_start, row[name])
                picked[name] = choice.otherwise(rows[-1][name])
            return picked

        return RowSet(names, starts[-1] + compiled[-1].count, row_at)

    def cross(self, parts: list[RowSet], here: str) -> RowSet:
        rows = parts[0]
        for other in parts[1:]:
            clash = set(rows.names) & set(other.names)
            if clash:
                raise ViewCompileError(f"{here}: column name(s) {sorted(clash)} used twice")
            rows = _cross(rows, other)
        return rows


def _cross(left: RowSet, right: RowSet) -> RowSet:
    """Each left row joined with each right row, left major."""
    names = left.names + right.names
    if right.single:
        return RowSet(
            names,
            left.count,
            lambda i, bind: {**left.row_at(i, bind), **right.row_at(F.lit(0), bind)},
            left.single,
        )
    if left.single:
        return RowSet(
            names, right.count, lambda i, bind: {**left.row_at(F.lit(0), bind), **right.row_at(i, bind)}
        )
    width = right.count
    return RowSet(
        names,
        left.count * width,
        lambda i, bind: {
            **left.row_at(F.floor(i / width).cast("int"), bind),
            **right.row_at(i % width, bind),
        },
    )


def _tagging(path_index: int, key: Column | None):
    """(node, position) -> struct(key = parent key + [path index, position], node)."""

    def tag(item: Column, position: Column) -> Column:
        step = F.array(F.lit(path_index), position)
        return F.struct((step if key is None else F.concat(key, step)).alias("key"), item.alias("node"))

    return tag


def check_view(view) -> None:
    if not isinstance(view, dict):
        raise ViewCompileError("a ViewDefinition must be a JSON object")
    kind = view.get("resourceType", "ViewDefinition")
    if kind not in ("ViewDefinition", VIEW_DEFINITION_URL):
        raise ViewCompileError(f"resourceType: {kind!r} is not ViewDefinition")
    unknown = set(view) - VIEW_KEYS
    if unknown:
        raise ViewCompileError(f"unknown element(s) {sorted(unknown)}")
    resource = view.get("resource")
    if not isinstance(resource, str) or not resource:
        raise ViewCompileError("resource: a ViewDefinition names the resource type it reads")
    if not r4.is_resource_type(resource):
        raise ViewCompileError(f"resource: {resource!r} is not a FHIR R4 resource type")
    if "select" not in view:
        raise ViewCompileError("select: a ViewDefinition needs at least one select")


def compile_view(
    view: dict,
    *,
    strict: bool = True,
    repeat_depth: int = DEFAULT_REPEAT_DEPTH,
    resource_key: Column | None = None,
) -> CompiledView:
    """Check and compile a view. The schema is whatever the expressions read, so the
    view is compiled until that stops growing (twice; recursive elements parse
    nested text with the final struct). `resource_key` is what getResourceKey() of the
    viewed resource returns, when not its `id` (a column of the rows view_rows reads)."""
    check_view(view)
    registry = SchemaRegistry()
    signature = None
    for _ in range(4):
        compiled = _ViewCompiler(
            view, registry, strict=strict, repeat_depth=repeat_depth, resource_key=resource_key
        ).compile()
        if registry.signature() == signature:
            return compiled
        signature = registry.signature()
    raise ViewCompileError("the view's schema did not settle")  # cannot happen: fields are only added


def view_rows(
    resources: DataFrame,
    compiled: CompiledView,
    text_column: str = "resource_json",
    *,
    keep: tuple[str, ...] = (),
    position: str | None = None,
    all_of_type: bool = False,
    mismatch: str | None = None,
) -> DataFrame:
    """The view's rows from a DataFrame of resource JSON texts (one resource each),
    each resource parsed once. `keep` columns are carried onto every row of their
    resource; `position` names a column numbering a resource's rows from 0;
    `all_of_type` says every text is of the view's resource type (a typed bronze
    table), so none is parsed a second time to filter by type; `mismatch` names a
    boolean column saying an element the view reads had the wrong JSON type."""
    schema = compiled.schema
    if "resourceType" not in schema.names:
        schema = T.StructType([*schema.fields, T.StructField("resourceType", T.StringType())])
    options = {}
    if mismatch is not None:
        schema = T.StructType([*schema.fields, T.StructField(CORRUPT_RECORD, T.StringType())])
        options = {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": CORRUPT_RECORD}
    parsed = resources.select(*keep, F.from_json(F.col(text_column), schema, options).alias("resource"))
    if mismatch is not None:
        parsed = parsed.withColumn(mismatch, F.col(f"resource.{CORRUPT_RECORD}").isNotNull())
        keep = (*keep, mismatch)
    if not all_of_type:
        parsed = parsed.where(F.col("resource.resourceType") == compiled.resource)
    if compiled.where is not None:
        parsed = parsed.where(compiled.where)
    exploded = parsed.select(*keep, "resource", F.explode(_positions(compiled.count)).alias(POSITION))
    at_items = exploded.select(*keep, "resource", POSITION, *compiled.items)
    numbered = [F.col(POSITION).alias(position)] if position is not None else []
    return at_items.select(*keep, *numbered, *compiled.fields)
