"""Generate include/fhir/r4_elements.json, the FHIR R4 element table (`make r4-elements`).

    python -m tools.r4_elements [--jar PATH] [--out include/fhir/r4_elements.json]

The SQL-on-FHIR ViewDefinition engine derives Spark schemas from FHIR element
definitions: which type each element has, whether it repeats, which elements
are choice types (`value[x]`) and which reuse another element's definition
(`contentReference`). The official R4 (4.0.1) StructureDefinitions carry all of
that in their snapshots, but as ~21 MB of XML; this tool reduces them to a
small JSON table that is committed, so the engine reads it without parsing XML
or needing network access.

Source: the StructureDefinition Bundles `profiles-types.xml` and
`profiles-resources.xml` inside the Maven Central artifact
`ca.uhn.hapi.fhir:hapi-fhir-validation-resources-r4:8.12.1` (its sha256 is
pinned below and checked whether the jar is downloaded or given with --jar).
`profiles-others.xml` (profiles, extensions) is not read.

Output: `{"fhirVersion", "source", "primitives", "types"}`.
  * primitives: every primitive type -> its FHIRPath system type (Boolean,
    String, Integer, Decimal, Date, DateTime, Time).
  * types: every resource (Resource and DomainResource included) and complex
    type (constrained ones such as SimpleQuantity included, keyed by the
    StructureDefinition's name) -> {element path relative to the type:
    {"type": [codes], "max": "1"|"*", "choice": true?, "ref": "Type.path"?}}.
    Choice paths drop "[x]" and list every allowed type in order; an element
    with a contentReference has "type": [] and "ref" naming the element it
    reuses. max is "*" for any repeating element, and elements with max 0 are
    left out (with their children).

Two errata of the 4.0.1 snapshots are corrected (and tested):
  * positiveInt.value and unsignedInt.value are typed System.String; a primitive
    takes the system type of the primitive it specializes (both -> Integer,
    as FHIRPath and the R4 JSON representation say).
  * Resource.id (and every resource's copy of it) says fhir-type "string"; the
    R4 specification (resource.html) and R5's definitions make it "id".

Only the standard library is used; the output is deterministic (sorted keys,
one type per line) so a regeneration diff shows what changed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import urllib.request
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Iterable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "include" / "fhir" / "r4_elements.json"

ARTIFACT = "ca.uhn.hapi.fhir:hapi-fhir-validation-resources-r4:8.12.1"
JAR_URL = (
    "https://repo1.maven.org/maven2/ca/uhn/hapi/fhir/hapi-fhir-validation-resources-r4/8.12.1/"
    "hapi-fhir-validation-resources-r4-8.12.1.jar"
)
# The sha256 Maven Central publishes next to the jar (JAR_URL + ".sha256").
JAR_SHA256 = "e3be14db8922f74dd554dfffb04e1d66fa0e10b84c7e1c65e25410a865fe161f"
BUNDLES = (
    "org/hl7/fhir/r4/model/profile/profiles-resources.xml",
    "org/hl7/fhir/r4/model/profile/profiles-types.xml",
)
SOURCE = f"{ARTIFACT} profiles-resources.xml + profiles-types.xml"

FHIR = "{http://hl7.org/fhir}"
SYSTEM_TYPE_PREFIX = "http://hl7.org/fhirpath/System."
FHIR_TYPE_EXTENSION = "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type"
SYSTEM_TYPES = {"Boolean", "String", "Integer", "Decimal", "Date", "DateTime", "Time"}
# Erratum of the R4 snapshots: Resource.id says fhir-type "string" (keyed by the element's base path).
FHIR_TYPE_CORRECTIONS = {"Resource.id": "id"}


def _value(element: ET.Element, tag: str) -> str | None:
    child = element.find(FHIR + tag)
    return None if child is None else child.get("value")


def _structure_definitions(bundle_xml: bytes) -> Iterable[ET.Element]:
    root = ET.fromstring(bundle_xml)
    if root.tag != FHIR + "Bundle":
        raise ValueError(f"not a FHIR Bundle: {root.tag}")
    yield from root.iterfind(f"{FHIR}entry/{FHIR}resource/{FHIR}StructureDefinition")


def _type_code(type_element: ET.Element, base_path: str | None) -> str:
    """A type code; FHIRPath system types become the FHIR primitive they stand for."""
    code = _value(type_element, "code")
    if not code:
        raise ValueError("type without a code")
    if not code.startswith(SYSTEM_TYPE_PREFIX):
        return code
    if base_path in FHIR_TYPE_CORRECTIONS:
        return FHIR_TYPE_CORRECTIONS[base_path]
    for extension in type_element.iterfind(FHIR + "extension"):
        if extension.get("url") == FHIR_TYPE_EXTENSION:
            fhir_type = _value(extension, "valueUrl") or _value(extension, "valueUri")
            if fhir_type:
                return fhir_type
    return code.removeprefix(SYSTEM_TYPE_PREFIX).lower()


def _elements(sd: ET.Element) -> dict[str, dict]:
    """The snapshot of one StructureDefinition as {relative path: entry}."""
    name, sd_type = _value(sd, "name"), _value(sd, "type")
    snapshot = sd.find(FHIR + "snapshot")
    if snapshot is None:
        raise ValueError(f"{name}: no snapshot")
    elements: dict[str, dict] = {}
    removed: list[str] = []  # paths with max 0: their children go too
    for element in snapshot.iterfind(FHIR + "element"):
        path = _value(element, "path") or ""
        if path == sd_type:
            continue
        if not path.startswith(sd_type + "."):
            raise ValueError(f"{name}: element {path} outside {sd_type}")
        if _value(element, "sliceName") or ":" in (element.get("id") or ""):
            continue
        if any(path.startswith(prefix + ".") for prefix in removed):
            continue
        max_ = _value(element, "max")
        if max_ == "0":
            removed.append(path)
            continue
        if max_ not in ("1", "*") and not (max_ or "").isdigit():
            raise ValueError(f"{name}: {path} has max {max_!r}")
        entry: dict = {"max": "1" if max_ == "1" else "*"}
        relative = path[len(sd_type) + 1 :]
        if relative.endswith("[x]"):
            relative = relative[:-3]
            entry["choice"] = True
        content_reference = _value(element, "contentReference")
        base = element.find(FHIR + "base")
        base_path = None if base is None else _value(base, "path")
        types = [_type_code(t, base_path) for t in element.iterfind(FHIR + "type")]
        if content_reference:
            if types:
                raise ValueError(f"{name}: {path} has both a contentReference and types")
            entry["ref"] = content_reference.split("#", 1)[1]
        elif not types:
            raise ValueError(f"{name}: {path} has no type")
        entry["type"] = types
        if relative in elements:
            raise ValueError(f"{name}: {path} appears twice")
        elements[relative] = entry
    return elements


def _primitive_system_type(sd: ET.Element) -> str:
    """The FHIRPath system type of a primitive's `value` element (System.X -> "X")."""
    sd_type = _value(sd, "type")
    for element in sd.iterfind(f"{FHIR}snapshot/{FHIR}element"):
        if _value(element, "path") == f"{sd_type}.value":
            codes = [_value(t, "code") or "" for t in element.iterfind(FHIR + "type")]
            system = [c.removeprefix(SYSTEM_TYPE_PREFIX) for c in codes if c.startswith(SYSTEM_TYPE_PREFIX)]
            if len(system) != 1 or system[0] not in SYSTEM_TYPES:
                raise ValueError(f"{sd_type}.value: unexpected types {codes}")
            return system[0]
    raise ValueError(f"primitive {sd_type} has no value element")


def element_table(bundle_xml_bytes_list: Iterable[bytes]) -> dict:
    """The element table of the StructureDefinitions in these XML Bundles.

    Reads primitive types, complex types and resources; other kinds (logical
    models such as MetadataResource) and non-StructureDefinition entries are
    ignored. Returns {"fhirVersion", "source", "primitives", "types"}.
    """
    versions: set[str] = set()
    primitives: dict[str, tuple[str, str | None]] = {}  # type -> (own system type, base primitive URL)
    urls: dict[str, str] = {}  # primitive URL -> type
    types: dict[str, dict] = {}
    for bundle_xml in bundle_xml_bytes_list:
        for sd in _structure_definitions(bundle_xml):
            kind, name = _value(sd, "kind"), _value(sd, "name")
            if kind not in ("primitive-type", "complex-type", "resource"):
                continue
            if version := _value(sd, "fhirVersion"):
                versions.add(version)
            if kind == "primitive-type":
                primitives[name] = (_primitive_system_type(sd), _value(sd, "baseDefinition"))
                urls[_value(sd, "url") or ""] = name
            else:
                if name in types:
                    raise ValueError(f"StructureDefinition {name} appears twice")
                types[name] = _elements(sd)
    if len(versions) > 1:
        raise ValueError(f"mixed FHIR versions: {sorted(versions)}")

    def system_type(primitive: str) -> str:
        # A specialized primitive (positiveInt < integer, code < string) shares its base's system type.
        own, base = primitives[primitive]
        return system_type(urls[base]) if base in urls else own

    return {
        "fhirVersion": versions.pop() if versions else None,
        "source": SOURCE,
        "primitives": {name: system_type(name) for name in sorted(primitives)},
        "types": {name: types[name] for name in sorted(types)},
    }


def render(table: dict) -> str:
    """The table as deterministic JSON text: sorted keys, compact, one type per line."""

    def dump(value) -> str:
        return json.dumps(value, sort_keys=True, indent=None, separators=(",", ":"))

    lines = ",\n".join(f"{dump(name)}:{dump(elements)}" for name, elements in sorted(table["types"].items()))
    return (
        f'{{"fhirVersion":{dump(table["fhirVersion"])},"source":{dump(table["source"])},'
        f'"primitives":{dump(table["primitives"])},"types":{{\n{lines}}}}}\n'
    )


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_bundles(jar: Path) -> list[bytes]:
    """The two Bundles of the pinned jar (its sha256 checked first)."""
    actual = sha256_of(jar)
    if actual != JAR_SHA256:
        raise ValueError(f"{jar}: sha256 {actual}, expected {JAR_SHA256} ({ARTIFACT})")
    with zipfile.ZipFile(jar) as archive:
        return [archive.read(member) for member in BUNDLES]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="r4_elements", description=__doc__.split("\n")[0])
    parser.add_argument("--jar", type=Path, help=f"a local copy of {ARTIFACT} (default: download it)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the JSON file to write")
    args = parser.parse_args(argv)
    try:
        if args.jar:
            bundles = read_bundles(args.jar)
        else:
            with tempfile.TemporaryDirectory() as tmp:
                jar = Path(tmp) / JAR_URL.rsplit("/", 1)[1]
                print(f"Downloading {JAR_URL}", flush=True)
                with urllib.request.urlopen(JAR_URL, timeout=120) as response, jar.open("wb") as f:
                    while chunk := response.read(1 << 20):
                        f.write(chunk)
                bundles = read_bundles(jar)
        table = element_table(bundles)
    except (OSError, ValueError, KeyError, ET.ParseError, zipfile.BadZipFile) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(table))
    print(f"Wrote {args.out}: {len(table['types'])} types, {len(table['primitives'])} primitives")
    return 0


if __name__ == "__main__":
    sys.exit(main())
