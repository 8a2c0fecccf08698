"""FHIR R4 element definitions: what each path of each type is (types, choice,
cardinality), read from include/fhir/r4_elements.json, which `make r4-elements`
generates from HL7's StructureDefinitions (tools/r4_elements.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache

from spark_jobs.codesets import include_path

# Types whose elements are defined inline in the owning StructureDefinition.
INLINE_TYPES = frozenset({"BackboneElement", "Element"})


@dataclass(frozen=True)
class Element:
    path: str  # "Patient.contact.telecom"
    types: tuple[str, ...]
    many: bool
    choice: bool
    ref: str | None  # contentReference target path, e.g. "QuestionnaireResponse.item"


@cache
def _table() -> dict:
    return json.loads(include_path("fhir", "r4_elements.json").read_text())


def primitive_system_type(code: str) -> str | None:
    """The FHIRPath system type (String, Integer, ...) of a primitive type code, else None."""
    return _table()["primitives"].get(code)


def is_type(name: str) -> bool:
    return name in _table()["types"] or name in _table()["primitives"]


def is_resource_type(name: str) -> bool:
    elements = _table()["types"].get(name)
    return elements is not None and "id" in elements and name[:1].isupper() and "meta" in elements


def element(owner: str, name: str) -> Element | None:
    """The element `name` of `owner`: a type name ("HumanName") or an inline element's
    path ("Patient.contact"); None when R4 defines no such element."""
    type_name, _, inner = owner.partition(".")
    elements = _table()["types"].get(type_name)
    if elements is None:
        return None
    relative = f"{inner}.{name}" if inner else name
    spec = elements.get(relative)
    if spec is None:
        return None
    ref = spec.get("ref")
    return Element(
        path=f"{type_name}.{relative}",
        types=tuple(spec["type"]),
        many=spec["max"] == "*",
        choice=bool(spec.get("choice")),
        ref=ref,
    )
