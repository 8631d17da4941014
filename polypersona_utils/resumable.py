"""Batched work that survives being killed: results are appended to a JSONL log keyed by a hash of their inputs.

Used by the teacher (references) and by generation (predictions). Batches are fixed slices of one deterministic
order, and a partly logged batch is recomputed whole, so an interrupted run, rerun, ends with exactly the results
of an uninterrupted one: no duplicate, no gap, and identical inputs are never computed twice.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Callable, Hashable, Iterable, Sequence, TypeVar

from .provenance import canonical_json

log = logging.getLogger(__name__)
Item = TypeVar("Item", bound=Hashable)


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
    rows = (json.loads(line) for line in complete.decode("utf-8").splitlines())
    return {row["key"]: row for row in rows}


def run_batches(items: Iterable[Item], key_of: Callable[[Item], str], order_of: Callable[[Item], tuple],
                compute: Callable[[Sequence[Item], int], list[dict]], log_path: Path, batch_size: int,
                desc: str, progress: bool = True) -> dict[Item, dict]:
    """Compute `compute(batch, batch_index) -> one row per item` for every distinct item not yet in the log."""
    from tqdm import tqdm  # plain text bars: readable in papermill logs and without ipywidgets

    keys = {item: key_of(item) for item in set(items)}
    ordered = sorted(keys, key=lambda item: (*order_of(item), keys[item]))
    log_path.parent.mkdir(parents=True, exist_ok=True)
    done = read_log(log_path)
    batches = [ordered[i:i + batch_size] for i in range(0, len(ordered), batch_size)]
    todo = [(index, batch) for index, batch in enumerate(batches) if any(keys[i] not in done for i in batch)]
    log.info("%s: %d items, %d already done, %d batches to run", desc, len(ordered),
             sum(keys[i] in done for i in ordered), len(todo))
    with open(log_path, "a", encoding="utf-8") as handle:
        for index, batch in tqdm(todo, desc=desc, disable=not progress):
            for item, row in zip(batch, compute(batch, index), strict=True):
                if keys[item] not in done:
                    done[keys[item]] = {"key": keys[item], **row}
                    handle.write(canonical_json(done[keys[item]]) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
    return {item: done[keys[item]] for item in ordered}
