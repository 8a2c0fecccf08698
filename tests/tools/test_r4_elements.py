"""Tests of the FHIR R4 element table (tools/r4_elements.py, include/fhir/r4_elements.json)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tools.r4_elements import SOURCE, element_table, render

REPO_ROOT = Path(__file__).resolve().parents[2]
TABLE_PATH = REPO_ROOT / "include" / "fhir" / "r4_elements.json"
TABLE = json.loads(TABLE_PATH.read_text())
TYPES = TABLE["types"]
# The pinned jar, when a copy is at hand (the generator downloads it otherwise).


def element(path: str) -> dict:
    type_name, relative = path.split(".", 1)
    return TYPES[type_name][relative]


# --- The committed table: facts known from the R4 specification ---------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("Patient.name", {"type": ["HumanName"], "max": "*"}),
        ("Patient.deceased", {"type": ["boolean", "dateTime"], "max": "1", "choice": True}),
        ("Patient.contact.telecom", {"type": ["ContactPoint"], "max": "*"}),
        ("Patient.id", {"type": ["id"], "max": "1"}),
        ("QuestionnaireResponse.item.item", {"type": [], "max": "*", "ref": "QuestionnaireResponse.item"}),
        (
            "QuestionnaireResponse.item.answer.item",
            {"type": [], "max": "*", "ref": "QuestionnaireResponse.item"},
        ),
        ("Extension.extension", {"type": ["Extension"], "max": "*"}),
        ("Extension.url", {"type": ["uri"], "max": "1"}),
        ("Extension.id", {"type": ["string"], "max": "1"}),
        ("HumanName.given", {"type": ["string"], "max": "*"}),
        ("Reference.reference", {"type": ["string"], "max": "1"}),
        ("Patient.contact", {"type": ["BackboneElement"], "max": "*"}),
        ("Narrative.div", {"type": ["xhtml"], "max": "1"}),
    ],
)
def test_known_elements(path, expected):
    assert element(path) == expected


@pytest.mark.parametrize("path", ["Observation.value", "Observation.component.value"])
def test_observation_value_is_a_choice(path):
    entry = element(path)
    assert entry["choice"] is True and entry["max"] == "1"
    expected = {"Quantity", "string", "integer", "CodeableConcept", "Range", "time", "dateTime", "Period"}
    assert expected <= set(entry["type"])
    assert "valueQuantity" not in TYPES["Observation"] and "value[x]" not in TYPES["Observation"]


def test_extension_value_is_the_open_choice():
    entry = element("Extension.value")
    assert entry["choice"] is True
    assert {"code", "Coding", "string", "Reference", "Quantity"} <= set(entry["type"])
    assert len(entry["type"]) == 50
    assert entry["type"] == element("Parameters.parameter.value")["type"]


def test_primitives():
    primitives = TABLE["primitives"]
    assert primitives["positiveInt"] == "Integer"
    assert primitives["unsignedInt"] == "Integer"
    assert primitives["decimal"] == "Decimal"
    assert primitives["dateTime"] == "DateTime"
    assert primitives["instant"] == "DateTime"
    assert primitives["code"] == "String"
    assert primitives["base64Binary"] == "String"
    assert primitives["xhtml"] == "String"
    assert len(primitives) == 20
    assert set(primitives.values()) == {"Boolean", "String", "Integer", "Decimal", "Date", "DateTime", "Time"}
    assert not set(primitives) & set(TYPES)


def test_every_resource_type_and_complex_type_is_present():
    resource_types = {
        line.strip()
        for line in (REPO_ROOT / "include" / "fhir" / "r4_resource_types.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert resource_types | {"Resource", "DomainResource"} <= set(TYPES)
    for name in (
        "Element",
        "BackboneElement",
        "Quantity",
        "SimpleQuantity",
        "MoneyQuantity",
        "Age",
        "Dosage",
    ):
        assert name in TYPES
    assert "MetadataResource" not in TYPES  # a logical model, not a type
    # SimpleQuantity is keyed by its name; its comparator (max 0) is gone.
    assert set(TYPES["SimpleQuantity"]) == set(TYPES["Quantity"]) - {"comparator"}


def test_table_is_closed():
    """Every type code names a primitive or a type, and every ref an element of its own type."""
    known = set(TABLE["primitives"]) | set(TYPES)
    for type_name, elements in TYPES.items():
        for path, entry in elements.items():
            assert set(entry) <= {"type", "max", "choice", "ref"}, (type_name, path)
            assert entry["max"] in ("1", "*")
            assert "[x]" not in path
            if "ref" in entry:
                assert entry["type"] == []
                ref_type, ref_path = entry["ref"].split(".", 1)
                assert ref_type == type_name and ref_path in elements, (type_name, path)
            else:
                assert entry["type"] and set(entry["type"]) <= known, (type_name, path)


def test_committed_file_is_in_canonical_form():
    assert TABLE["fhirVersion"] == "4.0.1"
    assert TABLE["source"] == SOURCE
    text = TABLE_PATH.read_text()
    assert text == render(TABLE)
    assert text.count("\n") == len(TYPES) + 1  # one type per line


# --- The generator --------------------------------------------------------------


def bundle(*structure_definitions: str) -> bytes:
    entries = "".join(f"<entry><resource>{sd}</resource></entry>" for sd in structure_definitions)
    return f'<Bundle xmlns="http://hl7.org/fhir"><type value="collection"/>{entries}</Bundle>'.encode()


def sd(name: str, kind: str, elements: str, type_: str | None = None, base: str = "Element") -> str:
    return (
        f'<StructureDefinition><url value="http://hl7.org/fhir/StructureDefinition/{name}"/>'
        f'<name value="{name}"/><fhirVersion value="4.0.1"/><kind value="{kind}"/>'
        f'<type value="{type_ or name}"/>'
        f'<baseDefinition value="http://hl7.org/fhir/StructureDefinition/{base}"/>'
        f"<snapshot>{elements}</snapshot></StructureDefinition>"
    )


def el(path: str, max_: str, *codes: str, base: str | None = None, extra: str = "", id_: str = "") -> str:
    """A snapshot element; a code "<system type URL>|<fhir type>" gets the fhir-type extension."""
    types = ""
    for code_and_fhir_type in codes:
        code, _, fhir_type = code_and_fhir_type.partition("|")
        extension = _fhir_type_extension(fhir_type) if fhir_type else ""
        types += f'<type>{extension}<code value="{code}"/></type>'
    base_path = f'<base><path value="{base}"/></base>' if base else ""
    return (
        f'<element id="{id_ or path}"><path value="{path}"/>{extra}<min value="0"/>'
        f'<max value="{max_}"/>{base_path}{types}</element>'
    )


def _fhir_type_extension(fhir_type: str) -> str:
    url = "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type"
    return f'<extension url="{url}"><valueUrl value="{fhir_type}"/></extension>'


STRING = "http://hl7.org/fhirpath/System.String"
HAND_WRITTEN_TYPES = bundle(
    sd(
        "integer",
        "primitive-type",
        el("integer", "*") + el("integer.value", "1", "http://hl7.org/fhirpath/System.Integer"),
    ),
    # The 4.0.1 erratum: positiveInt.value says System.String; it is an integer.
    sd(
        "positiveInt",
        "primitive-type",
        el("positiveInt", "*") + el("positiveInt.value", "1", STRING),
        base="integer",
    ),
    sd(
        "Quantity",
        "complex-type",
        el("Quantity", "*")
        + el("Quantity.id", "1", f"{STRING}|string", base="Element.id")
        + el("Quantity.extension", "*", "Extension")
        + el("Quantity.value", "1", "decimal")
        + el("Quantity.comparator", "1", "code")
        + el("Quantity.flag", "1", "http://hl7.org/fhirpath/System.Boolean"),
    ),
    sd(
        "SimpleQuantity",
        "complex-type",
        el("Quantity", "*")
        + el("Quantity.id", "1", f"{STRING}|string")
        + el("Quantity.extension", "*", "Extension")
        + el(
            "Quantity.extension",
            "1",
            "Extension",
            id_="Quantity.extension:unit",
            extra='<sliceName value="unit"/>',
        )
        + el("Quantity.extension.url", "1", f"{STRING}|uri", id_="Quantity.extension:unit.url")
        + el("Quantity.value", "1", "decimal")
        + el("Quantity.comparator", "0", "code"),
        type_="Quantity",
        base="Quantity",
    ),
)
HAND_WRITTEN_RESOURCES = bundle(
    sd(
        "Thing",
        "resource",
        el("Thing", "*")
        + el("Thing.id", "1", f"{STRING}|string", base="Resource.id")
        + el("Thing.value[x]", "1", "Quantity", "string", "positiveInt")
        + el("Thing.part", "5", "BackboneElement")
        + el("Thing.part.score", "1", "integer")
        + el("Thing.part.part", "*", extra='<contentReference value="#Thing.part"/>')
        + el("Thing.gone", "0", "BackboneElement")
        + el("Thing.gone.child", "1", "string"),
        base="DomainResource",
    ),
    sd("Model", "logical", el("Model", "*") + el("Model.x", "1", "string")),
    "<OperationDefinition/>",
)
HAND_WRITTEN_TABLE = {
    "fhirVersion": "4.0.1",
    "source": SOURCE,
    "primitives": {"integer": "Integer", "positiveInt": "Integer"},
    "types": {
        "Quantity": {
            "id": {"type": ["string"], "max": "1"},
            "extension": {"type": ["Extension"], "max": "*"},
            "value": {"type": ["decimal"], "max": "1"},
            "comparator": {"type": ["code"], "max": "1"},
            "flag": {"type": ["boolean"], "max": "1"},
        },
        "SimpleQuantity": {
            "id": {"type": ["string"], "max": "1"},
            "extension": {"type": ["Extension"], "max": "*"},
            "value": {"type": ["decimal"], "max": "1"},
        },
        "Thing": {
            "id": {"type": ["id"], "max": "1"},
            "value": {"type": ["Quantity", "string", "positiveInt"], "max": "1", "choice": True},
            "part": {"type": ["BackboneElement"], "max": "*"},
            "part.score": {"type": ["integer"], "max": "1"},
            "part.part": {"type": [], "max": "*", "ref": "Thing.part"},
        },
    },
}


def check_hand_written_bundle() -> None:
    table = element_table([HAND_WRITTEN_RESOURCES, HAND_WRITTEN_TYPES])
    assert table == HAND_WRITTEN_TABLE
    # The table keeps snapshot order; render() sorts.
    assert list(table["types"]["Thing"]) == ["id", "value", "part", "part.score", "part.part"]
    text = render(table)
    assert json.loads(text) == HAND_WRITTEN_TABLE
    assert text.splitlines()[2].startswith('"SimpleQuantity":{"extension":{"max":"*","type":["Extension"]}')


def test_element_table_of_a_hand_written_bundle():
    check_hand_written_bundle()
