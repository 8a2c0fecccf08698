"""Pure-Python pieces of FHIR JSON reading that Spark SQL cannot do exactly.

- `split_landing_file`: one landing file's bytes -> its records ("documents"),
  with gzip truncation and non-UTF-8 bytes reported per record, never raised.
- `split_bundle`: a Bundle's JSON text -> its entries, each entry's resource as
  the exact substring of the input (numbers such as 1.00 keep their precision,
  which a parse/re-serialize round trip would lose).

Both are plain functions over bytes/str so they are unit-tested without Spark;
bronze_ingest runs them inside Spark tasks.
"""

from __future__ import annotations

import base64
import json
import zlib
from collections.abc import Iterator
from typing import NamedTuple

# Reasons a record goes to bronze/quarantine (also produced by bronze_ingest).
NON_UTF8 = "non_utf8"
TRUNCATED_FILE = "truncated_file"
UNSUPPORTED_FILE = "unsupported_file_type"

SUPPORTED_SUFFIXES = (".ndjson", ".json", ".ndjson.gz", ".json.gz")


class Document(NamedTuple):
    """One record read from a landing file, before any JSON parsing."""

    source_file: str
    line_number: int | None  # 1-based for NDJSON lines; None for whole-file JSON
    text: str | None  # the record text; None when it is not valid UTF-8
    raw_base64: str | None  # the original bytes, kept when `text` could not be decoded
    read_error: str | None  # NON_UTF8 / TRUNCATED_FILE / UNSUPPORTED_FILE
    read_error_detail: str | None


def is_supported(path: str) -> bool:
    return path.lower().endswith(SUPPORTED_SUFFIXES)


def _gunzip(content: bytes) -> tuple[bytes, str | None]:
    """Decompress gzip data; on a truncated/corrupt stream return what was readable."""
    decompressor = zlib.decompressobj(wbits=31)
    try:
        data = decompressor.decompress(content)
    except zlib.error as exc:
        return b"", f"gzip stream is corrupt: {exc}"
    if not decompressor.eof:
        return data, f"gzip stream ends early after {len(content)} compressed bytes"
    return data, None


def _document(path: str, line: int | None, raw: bytes, error_detail: str | None = None) -> Document:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Document(
            path,
            line,
            None,
            base64.b64encode(raw).decode("ascii"),
            NON_UTF8,
            f"invalid UTF-8 at byte {exc.start}",
        )
    if error_detail is not None:
        return Document(path, line, text, None, TRUNCATED_FILE, error_detail)
    return Document(path, line, text, None, None, None)


def split_landing_file(path: str, content: bytes) -> Iterator[Document]:
    """Yield the records of one landing file (NDJSON lines or one JSON document)."""
    lower = path.lower()
    if not is_supported(lower):
        yield Document(
            path,
            None,
            None,
            base64.b64encode(content[:4096]).decode("ascii"),
            UNSUPPORTED_FILE,
            f"expected one of {', '.join(SUPPORTED_SUFFIXES)}",
        )
        return
    truncation: str | None = None
    if lower.endswith(".gz"):
        content, truncation = _gunzip(content)
        lower = lower[:-3]

    if lower.endswith(".json"):
        if content.strip() or truncation:
            yield _document(path, None, content, truncation)
        return

    lines = content.split(b"\n")
    # A complete file ends with a newline (or its last line is whole); when the
    # stream was cut, the last piece is a partial record.
    last = len(lines) - 1
    for number, raw in enumerate(lines, start=1):
        raw = raw.rstrip(b"\r")
        is_cut_piece = truncation is not None and number - 1 == last
        if not raw.strip():
            if is_cut_piece:
                yield Document(path, number, "", None, TRUNCATED_FILE, truncation)
            continue
        yield _document(path, number, raw, truncation if is_cut_piece else None)


class BundleEntry(NamedTuple):
    entry_index: int
    full_url: str | None
    request_method: str | None
    request_url: str | None
    resource_text: str | None  # exact JSON text of entry.resource, when present
    error: str | None  # why the entry cannot be read (not an object ...)


_DECODER = json.JSONDecoder()
_WHITESPACE = " \t\n\r"


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in _WHITESPACE:
        pos += 1
    return pos


def _object_members(text: str, pos: int) -> Iterator[tuple[str, int, int]]:
    """Yield (key, value_start, value_end) for the JSON object starting at `pos`."""
    if text[pos] != "{":
        raise ValueError(f"expected an object at offset {pos}")
    pos = _skip_ws(text, pos + 1)
    if text[pos] == "}":
        return
    while True:
        key, pos = json.decoder.scanstring(text, pos + 1)
        pos = _skip_ws(text, pos)
        if text[pos] != ":":
            raise ValueError(f"expected ':' at offset {pos}")
        start = _skip_ws(text, pos + 1)
        _, end = _DECODER.raw_decode(text, start)
        yield key, start, end
        pos = _skip_ws(text, end)
        if text[pos] == "}":
            return
        if text[pos] != ",":
            raise ValueError(f"expected ',' or '}}' at offset {pos}")
        pos = _skip_ws(text, pos + 1)


def _array_items(text: str, pos: int) -> Iterator[tuple[int, int]]:
    if text[pos] != "[":
        raise ValueError(f"expected an array at offset {pos}")
    pos = _skip_ws(text, pos + 1)
    if text[pos] == "]":
        return
    while True:
        _, end = _DECODER.raw_decode(text, pos)
        yield pos, end
        pos = _skip_ws(text, end)
        if text[pos] == "]":
            return
        if text[pos] != ",":
            raise ValueError(f"expected ',' or ']' at offset {pos}")
        pos = _skip_ws(text, pos + 1)


def split_bundle(bundle_text: str) -> list[BundleEntry]:
    """Split a (syntactically valid) Bundle into its entries, keeping raw resource text."""
    start = _skip_ws(bundle_text, 0)
    entries: list[BundleEntry] = []
    for key, value_start, _ in _object_members(bundle_text, start):
        if key != "entry":
            continue
        if bundle_text[value_start] != "[":
            return [BundleEntry(0, None, None, None, None, "Bundle.entry is not an array")]
        for index, (item_start, item_end) in enumerate(_array_items(bundle_text, value_start)):
            if bundle_text[item_start] != "{":
                entries.append(
                    BundleEntry(
                        index,
                        None,
                        None,
                        None,
                        bundle_text[item_start:item_end],
                        "Bundle.entry item is not an object",
                    )
                )
                continue
            full_url = method = url = resource = None
            for entry_key, entry_start, entry_end in _object_members(bundle_text, item_start):
                if entry_key == "fullUrl":
                    full_url = _DECODER.decode(bundle_text[entry_start:entry_end])
                elif entry_key == "resource":
                    resource = bundle_text[entry_start:entry_end]
                elif entry_key == "request" and bundle_text[entry_start] == "{":
                    request = _DECODER.decode(bundle_text[entry_start:entry_end])
                    method, url = request.get("method"), request.get("url")
            entries.append(BundleEntry(index, full_url, method, url, resource, None))
    return entries
