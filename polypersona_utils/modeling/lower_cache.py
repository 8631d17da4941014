"""The frozen lower layers' hidden states, computed once per respondent and reused at every step and epoch.

With LoRA on the top k decoder layers only (`lora.top_layers`), nothing below them changes during training: the
states the lower layers hand to the first adapted layer are the same at every epoch. `lower_states` runs each packed
respondent (`packing`) through the lower layers once, without gradients, and keeps each level's states (root, stems,
turns) per respondent; a training step then runs only the adapted layers from those states (`StatesCollator` puts
them in the batch, `lower_layers_passed` passes the lower layers while the step runs). A passed layer hands its input
on and grows its key-value cache by the level's length with one-wide zero keys, so that the cache sizes the model derives
its attention masks from are the full model's. The loss and the LoRA gradients equal those of the uncached path with
the same adapted layers up to float rounding (`tests/test_packing.py`). Memory: one float per hidden unit and token
(SmolLM2-135M: 576 x 4 bytes a token, about 1.6 MB a default-profile respondent), as much on disk while a run trains
(`lower_states(store=...)`: a killed run reads back what it computed).
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
from contextlib import contextmanager
from pathlib import Path
from typing import Sequence

from ..provenance import atomic_write_bytes
from .packing import PackedCollator, inner_model, level_states, packed_batch

__all__ = ["StatesCollator", "lower_layers_passed", "lower_states"]
log = logging.getLogger(__name__)


def _passed_layer(layer_idx: int):
    import torch

    class PassedLayer(torch.nn.Module):
        """A decoder layer whose output is already known: its input is handed on unchanged; its key-value cache
        grows by the level's length with one-wide keys (what mask sizes are read from)."""

        def __init__(self):
            super().__init__()
            self.layer_idx = layer_idx

        def forward(self, hidden_states, *args, past_key_values=None, **kwargs):
            if past_key_values is not None:
                empty = hidden_states.new_zeros(hidden_states.shape[0], 1, hidden_states.shape[1], 1)
                past_key_values.update(empty, empty, self.layer_idx)
            return hidden_states

    return PassedLayer()


@contextmanager
def lower_layers_passed(model, lower: int, upper_too: bool = False):
    """While it holds, the backbone's first `lower` decoder layers are passed (`upper_too`: the others instead, and
    the final norm too, so that the backbone returns the states entering layer `lower`)."""
    import torch

    if not lower and not upper_too:
        yield
        return
    backbone = inner_model(model).base_model
    layers, norm = backbone.layers, backbone.norm
    passed = range(lower, len(layers)) if upper_too else range(lower)
    backbone.layers = torch.nn.ModuleList([_passed_layer(i) if i in passed else layer for i, layer in enumerate(layers)])
    if upper_too:
        backbone.norm = torch.nn.Identity()
    try:
        yield
    finally:
        backbone.layers, backbone.norm = layers, norm


def lower_states(model, rows: Sequence[dict], pad_id: int, lower: int, batch_size: int = 4,
                 store: Path | None = None, chunk: int = 64) -> list[dict]:
    """Per packed row, the states entering decoder layer `lower` of its tokens, level by level: `root` (root
    length, hidden), `stems` and `turns` (one tensor each, its own length), in the model's dtype on its device.
    `store`: a folder keeping them `chunk` rows a file (`<first row>.pt`, written atomically as each chunk is done,
    with `lower`, the batch size and each row's hash, `row_signature`) and reading back a chunk whose rows and
    settings are the ones asked for (any other, or one that cannot be read, is computed again), so that a run
    killed while computing them (about 35 minutes for every eligible respondent here) or while training loses at
    most one chunk; the caller keeps the folder to one model and precision (PackedTrainer: a folder named by them
    in the run's checkpoints, emptied when the run's fingerprint changes)."""
    import torch

    if store is not None and chunk % batch_size:
        raise ValueError(f"lower_states: chunk ({chunk}) must be a multiple of batch_size ({batch_size}), so that "
                         "stored and computed states come from the same batches")
    out = []
    for first in range(0, len(rows), chunk if store is not None else max(len(rows), 1)):
        part = rows[first:first + chunk] if store is not None else rows
        path = None if store is None else Path(store) / f"{first:06d}.pt"
        signature = {"lower": lower, "batch_size": batch_size, "rows": [row_signature(row) for row in part]}
        saved = _stored(path, next(model.parameters()).device)
        if saved is not None:
            if {k: saved.get(k) for k in signature} == signature:
                out += saved["states"]
                continue
            log.warning("%s holds other rows or settings than the ones asked for; computed again", path)
        states = _computed_states(model, part, pad_id, lower, batch_size)
        if path is not None:
            buffer = io.BytesIO()
            torch.save({**signature, "states": states}, buffer)
            atomic_write_bytes(path, buffer.getvalue())  # a temporary file of its own, synced, then renamed
            log.info("frozen layers' states: %d of %d rows stored", min(first + chunk, len(rows)), len(rows))
        out += states
    return out


def _stored(path: Path | None, device) -> dict | None:
    """A stored chunk, or None where there is none or it cannot be read (a file cut short by a crash: warned,
    computed again)."""
    import pickle

    import torch

    if path is None or not path.exists():
        return None
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError) as exc:
        log.warning("%s cannot be read (%s); computed again", path, exc)
        return None


def row_signature(row: dict) -> str:
    """A packed row's token ids and which item each turn follows, hashed: what its stored states are checked
    against."""
    levels = [list(row["root"]), [list(x) for x in row["stems"]], [list(x) for x in row["turns"]],
              list(row["turn_items"])]
    return hashlib.sha256(json.dumps(levels).encode()).hexdigest()


def _computed_states(model, rows: Sequence[dict], pad_id: int, lower: int, batch_size: int) -> list[dict]:
    import torch

    out = []
    device = next(model.parameters()).device
    with torch.no_grad(), lower_layers_passed(model, lower, upper_too=True):
        for first in range(0, len(rows), batch_size):
            chunk = rows[first:first + batch_size]
            batch = {k: v.to(device) for k, v in packed_batch(chunk, pad_id).items()}
            root, stem, turn = level_states(model, batch)
            stems = turns = 0
            for b, row in enumerate(chunk):
                out.append({"root": root[b, :len(row["root"])].clone(),
                            "stems": [stem[stems + i, :len(s)].clone() for i, s in enumerate(row["stems"])],
                            "turns": [turn[turns + i, :len(t)].clone() for i, t in enumerate(row["turns"])]})
                stems, turns = stems + len(row["stems"]), turns + len(row["turns"])
    return out


def padded_states(parts: list, width: int):
    """(rows, width, hidden) of per-row (length, hidden) tensors, zeros after each row's length (masked there)."""
    import torch

    first = parts[0]
    out = first.new_zeros(len(parts), width, first.shape[-1])
    for i, part in enumerate(parts):
        out[i, :len(part)] = part
    return out


class StatesCollator(PackedCollator):
    """`PackedCollator` plus each row's stored lower-layer states (`states`, keyed by the row's `key`) as
    `root_states`, `stem_states` and `turn_states`, padded as the token ids are."""

    def __init__(self, pad_id: int, states: dict[str, dict]):
        super().__init__(pad_id)
        self.states = states

    def __call__(self, rows: list[dict]):
        batch = super().__call__(rows)
        stored = [self.states[row["key"]] for row in rows]
        batch["root_states"] = padded_states([s["root"] for s in stored], batch["root_ids"].shape[1])
        batch["stem_states"] = padded_states([x for s in stored for x in s["stems"]], batch["stem_ids"].shape[1])
        batch["turn_states"] = padded_states([x for s in stored for x in s["turns"]], batch["turn_ids"].shape[1])
        return batch
