"""Writes an extract: worker processes, part files, transaction Bundles, atomic renames."""

from __future__ import annotations

import dataclasses
import datetime
import gzip as gzip_format
import io
import multiprocessing
import os
import queue
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

import orjson
from tqdm import tqdm

from . import timeline as tl
from .resources import PATIENT, RESOURCE_TYPES, PatientWriter

# Bundled patients are grouped five to a Bundle; a block of patients holds exactly one group,
# and blocks are dealt to workers round-robin, so a Bundle never spans two workers.
PATIENTS_PER_BUNDLE = 5
BLOCK_WITHOUT_BUNDLES = 250
_PROGRESS_EVERY = 25
_BUFFER_BYTES = 1 << 20
_PARTIAL_SUFFIX = ".partial"
_NDJSON_LINE = orjson.OPT_APPEND_NEWLINE


def default_workers() -> int:
    return min(2, os.cpu_count() or 1)


@dataclass(frozen=True)
class Plan:
    """Everything a worker needs; picklable for spawned processes."""

    patients: int
    seed: int
    folder: str
    run_date: datetime.date
    history_days: int
    workers: int
    bundle_stride: int  # every bundle_stride-th patient goes into a Bundle; 0: none
    compress: bool

    @property
    def window_end(self) -> int:
        """End of the extract day (inclusive), UTC."""
        return tl.epoch_seconds(self.run_date) + tl.DAY - 1

    @property
    def window_start(self) -> int:
        """Exclusive: the window is (end - history_days, end]."""
        return self.window_end - self.history_days * tl.DAY

    @property
    def block_size(self) -> int:
        if self.bundle_stride:
            return self.bundle_stride * PATIENTS_PER_BUNDLE
        return BLOCK_WITHOUT_BUNDLES

    @property
    def blocks(self) -> int:
        return -(-self.patients // self.block_size)

    def ndjson_name(self, resource_type: str, worker: int) -> str:
        return f"{resource_type}.{worker:03d}.ndjson" + (".gz" if self.compress else "")


class _PartFile:
    """A hidden partial file behind a large C-level buffer (gzip compresses whole chunks)."""

    def __init__(self, path: Path, compress: bool):
        self._raw = open(path, "wb")  # noqa: SIM115 - closed in close()
        if compress:
            # mtime=0 and no file name keep gzip output byte-for-byte reproducible. Level 1 is
            # much faster than 6 on this JSON and still shrinks it well.
            target = gzip_format.GzipFile(filename="", mode="wb", fileobj=self._raw, mtime=0, compresslevel=1)
        else:
            target = self._raw
        self._buffered = io.BufferedWriter(target, buffer_size=_BUFFER_BYTES)
        self.write = self._buffered.write

    def close(self) -> None:
        self._buffered.close()  # flushes, and closes the GzipFile (which leaves _raw open)
        self._raw.close()


def partial_path(folder: Path, name: str) -> Path:
    return folder / f".{name}{_PARTIAL_SUFFIX}"


def _write_bundle(plan: Plan, folder: Path, block: int, entries: list) -> str:
    name = f"Bundle-transaction-{block:04d}.json"
    bits = tl.keyed_draws(plan.seed, block, tl.BUNDLE, tl.epoch_seconds(plan.run_date) // tl.DAY)
    end = tl.timestamp(plan.window_end)
    bundle = {
        "resourceType": "Bundle",
        "id": tl.uuid4(bits[0]),
        "meta": {"versionId": "1", "lastUpdated": end},
        "type": "transaction",
        "timestamp": end,
        "entry": entries,
    }
    partial_path(folder, name).write_bytes(orjson.dumps(bundle, option=orjson.OPT_INDENT_2))
    return name


_POST = {name: {"method": "POST", "url": name} for name in RESOURCE_TYPES}


def run_worker(plan: Plan, worker: int, progress) -> dict:
    """Generate the worker's blocks of patients; return counts and the names written."""
    folder = Path(plan.folder)
    names = [plan.ndjson_name(resource_type, worker) for resource_type in RESOURCE_TYPES]
    files = [_PartFile(partial_path(folder, name), plan.compress) for name in names]
    writers = [f.write for f in files]
    counts = [0] * len(RESOURCE_TYPES)
    dumps = orjson.dumps

    def to_ndjson(type_index: int, resource: dict) -> None:
        writers[type_index](dumps(resource, option=_NDJSON_LINE))
        counts[type_index] += 1

    entries: list = []

    def to_bundle(type_index: int, resource: dict) -> None:
        resource_id = resource["id"]
        if type_index == PATIENT:
            # Patients are re-sent in every extract: PUT keeps the update idempotent.
            request = {"method": "PUT", "url": f"Patient/{resource_id}"}
        else:
            request = _POST[RESOURCE_TYPES[type_index]]
        entries.append({"fullUrl": "urn:uuid:" + resource_id, "resource": resource, "request": request})

    bundle_entries = 0
    try:
        stride = plan.bundle_stride
        done = 0
        for block in range(worker, plan.blocks, plan.workers):
            first = block * plan.block_size
            for index in range(first, min(plan.patients, first + plan.block_size)):
                bundled = stride > 0 and index % stride == stride - 1
                PatientWriter(
                    plan.seed,
                    index,
                    plan.window_start,
                    plan.window_end,
                    to_bundle if bundled else to_ndjson,
                    bundled,
                ).write()
                done += 1
                if done == _PROGRESS_EVERY:
                    progress(done)
                    done = 0
            if entries:
                names.append(_write_bundle(plan, folder, block, entries))
                bundle_entries += len(entries)
                entries = []
        progress(done)
    finally:
        for f in files:
            f.close()
    result = dict(zip(RESOURCE_TYPES, counts, strict=True))
    result["Bundle"] = bundle_entries
    return {"counts": result, "names": names}


def _worker_main(plan: Plan, worker: int, messages) -> None:
    try:
        result = run_worker(plan, worker, lambda n: messages.put(("progress", worker, n)))
        messages.put(("done", worker, result))
    except BaseException:  # report anything, including KeyboardInterrupt, to the parent
        messages.put(("error", worker, traceback.format_exc()))
        raise


def _run_processes(plan: Plan, bar) -> list[dict]:
    # spawn, not fork: the parent may be a test process with a JVM and threads running.
    context = multiprocessing.get_context("spawn")
    messages = context.Queue()
    processes = [
        context.Process(
            target=_worker_main,
            args=(plan, worker, messages),
            name=f"fhir-generator-{worker}",
            daemon=True,
        )
        for worker in range(plan.workers)
    ]
    for process in processes:
        process.start()
    results: dict[int, dict] = {}
    try:
        while len(results) < plan.workers:
            try:
                kind, worker, payload = messages.get(timeout=1.0)
            except queue.Empty:
                dead = [
                    p.name for w, p in enumerate(processes) if w not in results and p.exitcode is not None
                ]
                if dead:
                    raise RuntimeError(f"worker(s) {', '.join(dead)} died without a result") from None
                continue
            if kind == "progress":
                bar.update(payload)
            elif kind == "done":
                results[worker] = payload
            else:
                raise RuntimeError(f"worker {worker} failed:\n{payload}")
    finally:
        for process in processes:
            if process.is_alive() and len(results) < plan.workers:
                process.terminate()
            process.join()
    return [results[w] for w in range(plan.workers)]


_OWN_PATTERNS = ("*.ndjson", "*.ndjson.gz", "Bundle-transaction-*.json", f".*{_PARTIAL_SUFFIX}")


def _prepare_folder(folder: Path, overwrite: bool) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    existing = sorted(p.name for p in folder.iterdir())
    if not existing:
        return
    if not overwrite:
        raise FileExistsError(
            f"{folder} already holds {len(existing)} file(s) (e.g. {existing[0]}); "
            "pass --overwrite to replace the generator's files"
        )
    for pattern in _OWN_PATTERNS:
        for path in folder.glob(pattern):
            path.unlink()


def generate(
    patients: int,
    seed: int,
    out: str | os.PathLike,
    date: str | datetime.date,
    history_days: int = 730,
    workers: int | None = None,
    bundle_fraction: float = 0.02,
    gzip: bool = False,
    overwrite: bool = False,
    progress: bool = False,
) -> dict:
    """Write the extract for ``date`` to ``out/daily_extract/<date>/``.

    Returns the number of resources written per type to the NDJSON files, plus
    "Bundle": the number of resources inside transaction Bundles (the values add
    up to every resource written).
    """
    if isinstance(date, str):
        run_date = _parse_date(date)
    elif isinstance(date, datetime.datetime):
        run_date = date.date()
    else:
        run_date = date
    if not 0 <= seed <= tl.MAX_SEED:
        raise ValueError(f"seed must be in 0..{tl.MAX_SEED}")
    if not 0 < patients < tl.MAX_PATIENTS:
        raise ValueError("patients must be positive")
    if history_days < 1:
        raise ValueError("history_days must be at least 1")
    window_end = tl.epoch_seconds(run_date) + tl.DAY
    if not tl.SPAN_START < window_end <= tl.SPAN_END + 1:
        raise ValueError("date must be within 2012-01-01 .. 2035-12-31, the generated time span")
    if not 0.0 <= bundle_fraction <= 1.0:
        raise ValueError("bundle_fraction must be between 0 and 1")
    stride = round(1.0 / bundle_fraction) if bundle_fraction > 0 else 0
    folder = Path(out) / "daily_extract" / run_date.isoformat()
    requested_workers = default_workers() if workers is None else workers
    if requested_workers < 1:
        raise ValueError("workers must be at least 1")
    plan = Plan(patients, seed, str(folder), run_date, history_days, requested_workers, stride, gzip)
    plan = dataclasses.replace(plan, workers=min(requested_workers, plan.blocks))

    _prepare_folder(folder, overwrite)
    try:
        with tqdm(
            total=patients, unit="patient", file=sys.stderr, disable=not progress, smoothing=0.1
        ) as bar:
            results = [run_worker(plan, 0, bar.update)] if plan.workers == 1 else _run_processes(plan, bar)
    except BaseException:
        for path in folder.glob(f".*{_PARTIAL_SUFFIX}"):
            path.unlink()
        raise
    # Only now, with every part complete, do the files appear under their final names.
    for result in results:
        for name in result["names"]:
            os.replace(partial_path(folder, name), folder / name)
    totals = dict.fromkeys((*RESOURCE_TYPES, "Bundle"), 0)
    for result in results:
        for key, value in result["counts"].items():
            totals[key] += value
    return totals


def _parse_date(text: str) -> datetime.date:
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"invalid date {text!r}: expected YYYY-MM-DD") from None
