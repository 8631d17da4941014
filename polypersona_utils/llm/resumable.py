"""Batched work that survives being killed: results are appended to a JSONL log keyed by a hash of their inputs.

Used by the teacher (references) and by generation (predictions). Batches are fixed slices of one deterministic
order, and a partly logged batch is recomputed whole, so an interrupted run, rerun, ends with exactly the results
of an uninterrupted one: no duplicate, no gap, and identical inputs are never computed twice.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
from pathlib import Path
from typing import Callable, Hashable, Iterable, Sequence, TypeVar

from ..provenance import canonical_json, ensure_folder

log = logging.getLogger(__name__)
Item = TypeVar("Item", bound=Hashable)


class ResumableLogError(ValueError):
    """A results log that cannot be resumed as it is; the message names the file and the line."""


def read_log(path: Path) -> dict[str, dict]:
    """key -> row of a results log; a last line cut short by a kill is removed so that appends stay well-formed."""
    if not path.exists():
        return {}
    data = path.read_bytes()
    complete = data[: data.rfind(b"\n") + 1]
    if len(complete) != len(data):
        log.warning("%s: dropping a half-written last line from an interrupted run", path)
        with open(path, "r+b") as handle:
            handle.truncate(len(complete))
    rows = {}
    for number, line in enumerate(complete.decode("utf-8", errors="replace").splitlines(), start=1):
        try:
            row = json.loads(line)
            rows[row["key"]] = row
        except (json.JSONDecodeError, KeyError, TypeError):
            raise ResumableLogError(
                f"{path}: line {number}: not a result row ({line[:60]!r}); the log is not overwritten. Delete that "
                f"line to recompute only its batch, or the file to recompute everything") from None
    return rows


@contextlib.contextmanager
def exclusive_lock(log_path: Path):
    """Hold `<log>.lock` while a process appends to the log: a second build of the same profile waits for the
    first, then finds its work done, instead of computing every batch again and appending it twice."""
    lock_path = log_path.with_name(log_path.name + ".lock")
    with open(lock_path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.warning("%s: another process is writing this log; waiting for it to finish", log_path)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def run_batches(items: Iterable[Item], key_of: Callable[[Item], str], order_of: Callable[[Item], tuple],
                compute: Callable[[Sequence[Item], int], list[dict]], log_path: Path, batch_size: int,
                desc: str, progress: bool = True) -> dict[Item, dict]:
    """Compute `compute(batch, batch_index) -> one row per item` for every distinct item not yet in the log."""
    keys = {item: key_of(item) for item in set(items)}
    ordered = sorted(keys, key=lambda item: (*order_of(item), keys[item]))
    ensure_folder(log_path.parent)
    with exclusive_lock(log_path):
        return _run_locked(ordered, keys, compute, log_path, batch_size, desc, progress)


def _run_locked(ordered, keys, compute, log_path, batch_size, desc, progress):
    from tqdm import tqdm  # plain text bars: readable in papermill logs and without ipywidgets

    done = read_log(log_path)
    batches = [ordered[i:i + batch_size] for i in range(0, len(ordered), batch_size)]
    todo = [(index, batch) for index, batch in enumerate(batches) if any(keys[i] not in done for i in batch)]
    log.info("%s: %d items, %d already done, %d batches to run", desc, len(ordered),
             sum(keys[i] in done for i in ordered), len(todo))
    with open(log_path, "a", encoding="utf-8") as handle:
        for index, batch in tqdm(todo, desc=desc, disable=not progress):
            rows = compute(batch, index)
            lines = []
            for item, row in zip(batch, rows, strict=True):
                if keys[item] not in done:
                    done[keys[item]] = {"key": keys[item], **row}
                    lines.append(canonical_json(done[keys[item]]) + "\n")
            try:
                handle.write("".join(lines))
                handle.flush()
                os.fsync(handle.fileno())
            except OSError as exc:  # a full disk: name the file; the next run drops the half line and redoes it
                raise OSError(exc.errno, f"{log_path}: could not append results ({exc.strerror})") from exc
    return {item: done[keys[item]] for item in ordered}
