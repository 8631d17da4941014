"""A synthetic panel scored against a held-out panel of real survey respondents (notebook 06).

The held-out panel is real respondents disjoint from every persona of the profile's dataset (so from every training
persona), drawn with `seeds.panel` (`study.StudyRun.panel`); each is asked every linked survey item they answered.
For each model variant the panel holds, per (respondent, item), the model's probability of each option
(`option_scoring`: a forward pass over the study's one prompt; a served model, `backend: http`, gives them from its
token log-probabilities or, without them, as the smoothed shares of `panel.http_samples` sampled answers:
`panel.served`), averaged over the option order given by the bank and its reverse (models favour a position; the
size of that effect is kept), and one answer sampled from it at the generation temperature (seeded per respondent
and item, so the panel has the spread a real one has). Written to
`artifacts/<profile>/[runs/<run>/]panel/<variant>.jsonl`, one line per (respondent, item) with `persona_id`,
`question_id`, `options` (bank order), `probabilities` (same order, summing to 1), `probabilities_reversed_order`,
`sampled_option`, `real_option`.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np

from ..dataset.demographics import CARD_SUBGROUPS, demographic_frame
from ..dataset.prompts import build_messages
from ..dataset.respondents import PanelRespondent
from ..llm import models
from ..llm.option_scoring import option_log_probs
from ..llm.resumable import run_batches
from ..provenance import sha256_file, sha256_json, write_jsonl
from ..study import StudyRun
from .served import ServedPanel, option_steps, requests_per_pair

log = logging.getLogger(__name__)


def softmax(scores) -> np.ndarray:
    scores = np.asarray(scores, float)
    weights = np.exp(scores - scores.max())
    return weights / weights.sum()


def sampled_option(probabilities, options, temperature: float, seed_parts: tuple[int, ...]) -> str:
    """One answer drawn from the distribution sharpened or flattened by `temperature` (0: the most probable)."""
    p = np.asarray(probabilities, float)
    if temperature <= 0:
        return options[int(np.argmax(p))]
    p = p ** (1 / temperature)
    return options[int(np.random.default_rng(list(seed_parts)).choice(len(options), p=p / p.sum()))]


def ordered_prompts(respondent: PanelRespondent, question, include_persona: bool) -> list[tuple[list[str], list]]:
    """(options, prompt) for the bank's option order and its reverse: every variant is asked both."""
    return [(order, build_messages(respondent.card, question.domain, question.text, question.question_type, order,
                                   include_persona=include_persona))
            for order in (list(question.options), list(reversed(question.options)))]


def respondent_distributions(model, tokenizer, respondent: PanelRespondent, questions: dict, include_persona: bool
                             ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """question_id -> (probabilities in the bank's order, the same with the options' order reversed in the
    prompt); one scoring call per respondent, so the card runs through the model once, and each question's words
    once for both orders."""
    chats, options, keys = [], [], []
    for qid in respondent.answers:
        for order, chat in ordered_prompts(respondent, questions[qid], include_persona):
            chats.append(chat)
            options.append(order)
            keys.append(qid)
    scores = option_log_probs(model, tokenizer, chats, options, groups=keys)  # a question's two orders share its words
    out: dict[str, list] = {}
    for qid, order, row in zip(keys, options, scores):
        by_option = dict(zip(order, softmax(row)))
        out.setdefault(qid, []).append(np.array([by_option[o] for o in questions[qid].options]))
    return {qid: (given, reversed_) for qid, (given, reversed_) in out.items()}


def score_panel(run: StudyRun, variant, respondents: list[PanelRespondent], out: Path, progress: bool = True
                ) -> list[dict]:
    """Every (respondent, item) of `respondents` (the run's panel) scored by `variant`, with the run's settings and
    linked questions, written to `out` and returned. Resumable: respondents are
    logged as they are scored (`cache/panel/<variant>.jsonl`, keyed by everything that decides their numbers), so
    an interrupted run continues where it stopped and a rerun with the same inputs scores nothing again."""
    config, questions = run.config, run.linked_questions
    dtype = models.inference_dtype(config.panel.dtype)
    adapter = Path(variant.adapter_dir) / "adapter_model.safetensors" if variant.adapter_dir else None
    identity = {"variant": variant.name, "model": [variant.model_id, variant.revision],
                "adapter_sha256": sha256_file(adapter) if adapter and adapter.exists() else None,
                "quantization": config.training.quantization, "compute_dtype": config.training.compute_dtype,
                "dtype": dtype, "include_persona": variant.include_persona,
                "temperature": config.generation.temperature, "seed": config.seeds.sampling}
    served = None
    if variant.http_url:  # a served model: what its answers depend on
        p = config.panel
        identity = {"variant": variant.name, "http": [variant.http_url, variant.model_id],
                    "include_persona": variant.include_persona, "method": p.http_method, "samples": p.http_samples,
                    "top_logprobs": p.http_top_logprobs, "decoding": [config.generation.temperature,
                    config.generation.top_p, config.generation.max_new_tokens], "seed": config.seeds.sampling}
        if variant.tokenizer:
            identity["tokenizer"] = variant.tokenizer
        tokenizer = models.load_tokenizer(variant.tokenizer, None, variant.chat_template) if variant.tokenizer \
            else None
        served = ServedPanel(config, variant, tokenizer)
        pairs = sum(len(r.answers) for r in respondents)
        exact = ""
        if tokenizer is not None and p.http_method == "auto" and respondents and respondents[0].answers:
            first = respondents[0]
            order, chat = ordered_prompts(first, questions[sorted(first.answers)[0]], variant.include_persona)[0]
            prefixes = len({step[0] for option in option_steps(tokenizer, chat, list(order)) for step in option})
            exact = (f"{pairs * requests_per_pair(config, 'tokens', prefixes)} requests if the endpoint gives "
                     f"log-probabilities ({prefixes} answer prefixes x 2 orders a pair), else ")
        message = (f"panel {variant.name}: {pairs} respondent-item pairs, {exact}"
                   f"{pairs * requests_per_pair(config, 'samples')} ({p.http_samples} samples x 2 orders a pair); "
                   f"{p.http_concurrency} in flight (fewer if cached)")
        log.info(message)
        print(message, flush=True)
    by_id = {r.persona_id: r for r in respondents}
    order = {r.persona_id: i for i, r in enumerate(respondents)}
    loaded = {}

    def seed_of(respondent):
        number = respondent_number(respondent.persona_id)
        return lambda qid, order_index, sample: int(np.random.SeedSequence(
            [config.seeds.sampling, number, linked_index(questions, qid), order_index, sample]).generate_state(1)[0])

    def distributions_of(respondent):
        if served is not None:
            return served.distributions(respondent, questions,
                                        lambda r, q: ordered_prompts(r, q, variant.include_persona),
                                        seed_of(respondent))
        if not loaded:  # loaded only when something is left to score
            loaded["model"], loaded["tokenizer"] = models.merged_model(
                variant.model_id, variant.revision, variant.chat_template, variant.adapter_dir,
                config.training.quantization, config.training.compute_dtype, dtype)
        scored = respondent_distributions(loaded["model"], loaded["tokenizer"], respondent, questions,
                                          variant.include_persona)
        return {qid: (given, reversed_, None, None) for qid, (given, reversed_) in scored.items()}

    def compute(batch_ids, batch_index):
        rows = []
        for respondent in (by_id[pid] for pid in batch_ids):
            items = []
            for qid, (given, reversed_, unparseable, method) in sorted(distributions_of(respondent).items()):
                options = list(questions[qid].options)
                mean = (given + reversed_) / 2
                items.append({
                    "persona_id": respondent.persona_id, "question_id": qid, "survey_item": questions[qid].survey_item,
                    "options": options, "probabilities": [round(float(p), 6) for p in mean],
                    "probabilities_given_order": [round(float(p), 6) for p in given],
                    "probabilities_reversed_order": [round(float(p), 6) for p in reversed_],
                    # seeded by respondent and item, not by batch: the same answer however the run was cut
                    "sampled_option": sampled_option(mean, options, config.generation.temperature,
                                                     (config.seeds.sampling, respondent_number(respondent.persona_id),
                                                      linked_index(questions, qid))),
                    "real_option": respondent.answers[qid], "variant": variant.name,
                    **({"scored_by": method, "unparseable_samples": unparseable if method == "samples" else 0,
                        "bounded_options": unparseable if method == "tokens" else 0} if variant.http_url
                       else {"scoring_dtype": dtype})})
            rows.append({"items": items})
        return rows

    try:
        done = run_batches(list(by_id), key_of=lambda pid: sha256_json({**identity, "respondent": pid,
                                                                        "card": by_id[pid].card,
                                                                        "items": sorted(by_id[pid].answers)}),
                           order_of=lambda pid: (order[pid],), compute=compute,
                           log_path=config.paths().cache / "panel" / f"{variant.name}.jsonl",
                           batch_size=config.panel.batch_respondents, desc=f"panel {variant.name}",
                           progress=progress)
    finally:
        if served is not None:
            served.close()
    rows = [item for r in respondents for item in done[r.persona_id]["items"]]
    write_jsonl(out, rows)
    return rows


def respondent_number(persona_id: str) -> int:
    """The respondent's number in the survey (the digits after the last '-': gss2018-0042 -> 42), a sampling seed."""
    return int(persona_id.rsplit("-", 1)[-1])


def linked_index(questions: dict, qid: str) -> int:
    return sorted(questions).index(qid)


def subgroup_variables(survey) -> tuple[str, ...]:
    """The panel's subgroups: the card's and the survey's extra ones (GSS 2018: race)."""
    return CARD_SUBGROUPS + tuple(survey.subgroups)


def panel_frame(rows: list[dict], respondents: dict[str, PanelRespondent]):
    """One row per (variant, respondent, item) with the subgroups the tables compare in."""
    import pandas as pd

    frame = pd.DataFrame(rows)
    cards = [respondents[p].card for p in frame.persona_id]
    groups = demographic_frame(cards)
    for name in CARD_SUBGROUPS:
        frame[name] = groups[name].to_numpy()
    for name in dict.fromkeys(name for r in respondents.values() for name in r.subgroups):
        frame[name] = [respondents[p].subgroups[name] for p in frame.persona_id]
    return frame


def order_effect(rows: list[dict]) -> float:
    """Mean total-variation distance between the distributions for the given and the reversed option order."""
    gaps = [0.5 * sum(abs(a - b) for a, b in zip(r["probabilities_given_order"], r["probabilities_reversed_order"]))
            for r in rows if "probabilities_given_order" in r]
    return float(np.mean(gaps)) if gaps else math.nan
