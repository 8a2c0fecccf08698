"""Landing-file and Bundle splitting (pure Python, no Spark)."""

from __future__ import annotations

import base64
import gzip
import json

from spark_jobs.fhir_json import (
    NON_UTF8,
    TRUNCATED_FILE,
    UNSUPPORTED_FILE,
    split_bundle,
    split_landing_file,
)

PATIENT = b'{"resourceType":"Patient","id":"p1"}'
OBSERVATION = b'{"resourceType":"Observation","id":"o1","valueQuantity":{"value":1.00}}'


def test_ndjson_lines_are_numbered_and_blank_lines_skipped():
    docs = list(split_landing_file("x/a.ndjson", PATIENT + b"\r\n\n" + OBSERVATION + b"\n"))
    assert [(d.line_number, d.text, d.read_error) for d in docs] == [
        (1, PATIENT.decode(), None),
        (3, OBSERVATION.decode(), None),
    ]


def test_non_utf8_line_keeps_its_bytes():
    bad = b'{"resourceType":"Patient","id":"p\xff2"}'
    docs = list(split_landing_file("a.ndjson", PATIENT + b"\n" + bad + b"\n"))
    assert docs[0].read_error is None
    assert docs[1].read_error == NON_UTF8
    assert docs[1].text is None
    assert base64.b64decode(docs[1].raw_base64) == bad


def test_truncated_gzip_keeps_whole_lines_and_flags_the_cut_one():
    data = gzip.compress(PATIENT + b"\n" + OBSERVATION + b"\n" + PATIENT + b"\n")
    cut = data[: len(data) - 12]  # drop the gzip trailer and some deflate data
    docs = list(split_landing_file("a.ndjson.gz", cut))
    complete = [d for d in docs if d.read_error is None]
    flagged = [d for d in docs if d.read_error == TRUNCATED_FILE]
    assert all(json.loads(d.text) for d in complete)
    assert len(flagged) == 1
    assert "ends early" in flagged[0].read_error_detail
    # What survived plus the cut piece accounts for everything that was decompressed.
    assert len(complete) + len(flagged) >= 2


def test_intact_gzip_json_document():
    bundle = json.dumps({"resourceType": "Bundle", "type": "collection", "entry": []}).encode()
    docs = list(split_landing_file("b.json.gz", gzip.compress(bundle)))
    assert len(docs) == 1
    assert docs[0].line_number is None
    assert json.loads(docs[0].text)["resourceType"] == "Bundle"


def test_unsupported_file_is_reported_not_dropped():
    docs = list(split_landing_file("notes.csv", b"a,b\n1,2\n"))
    assert [d.read_error for d in docs] == [UNSUPPORTED_FILE]
    assert base64.b64decode(docs[0].raw_base64) == b"a,b\n1,2\n"


def test_split_bundle_keeps_exact_resource_text():
    bundle = (
        '{"resourceType": "Bundle", "id": "b1", "type": "transaction", "entry": [\n'
        '  {"fullUrl": "urn:uuid:1", "resource": {"resourceType": "Observation",'
        ' "valueQuantity": {"value": 1.00, "unit": "g"}},\n'
        '   "request": {"method": "POST", "url": "Observation"}},\n'
        '  {"request": {"method": "DELETE", "url": "Patient/234"}},\n'
        '  "not an entry"\n'
        "]}"
    )
    entries = split_bundle(bundle)
    assert [e.entry_index for e in entries] == [0, 1, 2]
    first = entries[0]
    assert first.full_url == "urn:uuid:1"
    assert (first.request_method, first.request_url) == ("POST", "Observation")
    # 1.00 keeps its two decimals: the text is a substring of the input.
    assert first.resource_text == (
        '{"resourceType": "Observation", "valueQuantity": {"value": 1.00, "unit": "g"}}'
    )
    assert entries[1].resource_text is None
    assert (entries[1].request_method, entries[1].request_url) == ("DELETE", "Patient/234")
    assert entries[2].error == "Bundle.entry item is not an object"


def test_split_bundle_on_every_hl7_example_bundle(hl7_examples):
    for path in sorted(hl7_examples.glob("Bundle-*.json")):
        text = path.read_text()
        parsed = json.loads(text)
        entries = split_bundle(text)
        assert len(entries) == len(parsed["entry"]), path.name
        for entry, original in zip(entries, parsed["entry"], strict=True):
            if "resource" in original:
                assert json.loads(entry.resource_text) == original["resource"]
            assert entry.full_url == original.get("fullUrl")
