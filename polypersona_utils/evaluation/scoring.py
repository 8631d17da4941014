"""Notebook 04: score every variant's predictions and regenerate the study's tables and figures.

Non-LLM references are scored beside the models: `baseline-train-retrieval` answers a closed question with the
training respondents' most common answer to it, and an open question with the training reference of the most
similar training persona (most card fields in common) for the same question. A model that cannot beat it has
learned nothing about people.
"""
from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pandas as pd

from ..dataset.respondents import linked_items
from ..dataset.splits import load_split
from ..modeling.generation import variants
from ..provenance import atomic_write_json, atomic_write_text, provenance_record, read_jsonl, sha256_file
from ..reporting.checks import TableCheck, check_tables
from ..reporting.readme import write_section
from ..reporting.tables import write_table, written_tables
from ..stats import paired_differences, persona_bootstrap_indices, with_intervals
from . import metrics
from .baselines import BASELINE, CELL_BASELINE, demographic_cell_baseline, retrieval_baseline
from .fidelity import fidelity_and_diversity
from .figures import distribution_figure, metric_figures, subgroup_distribution_figure
from .metrics import SURVEY_METRICS, TEXT_METRICS
from .readme_section import metrics_section
from .survey_alignment import closed_alignment, item_distributions, subgroup_alignment

ANSWER_COLUMNS = ("variant", "id", "persona_id", "domain", "question_id", "question_type", "reference_source",
                  "reference", "prediction", "parsed_option", "unparseable")


def answers_frame(test: list[dict], predictions: dict[str, list[dict]]) -> pd.DataFrame:
    """One row per (variant, record): the texts every score is computed from."""
    by_id = {r["id"]: r for r in test}
    rows = []
    for variant, answers in predictions.items():
        for answer in sorted(answers, key=lambda a: a["id"]):
            record = by_id[answer["id"]]
            rows.append({"variant": variant, **{k: record[k] for k in ANSWER_COLUMNS[2:8]}, "id": record["id"],
                         "prediction": answer["prediction"], "parsed_option": answer["parsed_option"],
                         "unparseable": answer["unparseable"]})
    return pd.DataFrame(rows, columns=list(ANSWER_COLUMNS))


def add_scores(frame: pd.DataFrame, settings) -> pd.DataFrame:
    """Every per-example text and survey score, computed per variant."""
    parts = []
    for _, part in frame.groupby("variant", sort=False):
        scores = metrics.text_scores(part.prediction.fillna("").tolist(), part.reference.tolist(), settings)
        parts.append(part.assign(**scores))
    return pd.concat(parts, ignore_index=True)


def load_predictions(config, split: str = "test") -> dict[str, list[dict]]:
    folder = config.paths(split).predictions
    return {v.name: read_jsonl(folder / f"{v.name}.jsonl") for v in variants(config)}


def persona_resamples(config):
    """part of a frame -> its persona bootstrap resamples (the profile's seed and count)."""
    return lambda part: persona_bootstrap_indices(list(part.persona_id), config.metrics.bootstrap_samples,
                                                  config.seeds.bootstrap)


def compute_tables(config, frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The study's tables from scored answers (pure given the frame, the question bank and the survey's data)."""

    seeds, m = config.seeds, config.metrics
    resamples_of = persona_resamples(config)
    everything, frame = frame, frame[frame.variant != CELL_BASELINE]  # the cell baseline answers closed ones only
    text = with_intervals(frame, TEXT_METRICS, resamples_of)
    text.insert(3, "sacrebleu_corpus", [metrics.sacrebleu_corpus(
        frame[frame.variant == v].prediction.fillna(""), frame[frame.variant == v].reference, m.bleu_tokenize,
        m.bleu_smooth_method, m.bleu_lowercase)[0] for v in text.variant])
    survey = with_intervals(frame, SURVEY_METRICS, resamples_of)
    domain = frame.groupby(["variant", "domain"], sort=False)[list(TEXT_METRICS + SURVEY_METRICS)].mean().reset_index()
    bank = config.bank
    items = linked_items(bank)
    options = {q.question_id: list(q.options) for q in bank.questions}
    shares, ceilings = item_distributions(config.survey, seeds.bootstrap)
    closed = closed_alignment(everything, shares, items, options)
    asked = sorted({items[q] for q in frame.question_id.unique() if q in items})
    closed.loc[len(closed)] = {"variant": "human split-half ceiling", "distribution_alignment":
                               float(np.mean([ceilings[i] for i in asked])) if asked else np.nan}
    model_variants = [v for v in frame.variant.unique() if not v.startswith("baseline-")]
    columns = TEXT_METRICS + SURVEY_METRICS
    paired = [paired_differences(frame, columns, seeds.bootstrap, m.bootstrap_samples, v,
                                 v.replace("-lora", "-zeroshot")) for v in model_variants if v.endswith("-lora")]
    paired += [paired_differences(frame, columns, seeds.bootstrap, m.bootstrap_samples, v, BASELINE)
               for v in model_variants]
    return {"model_comparison": text, "survey_metrics": survey, "domain_metrics": domain,
            "closed_alignment": closed, "paired_differences": pd.concat(paired, ignore_index=True)}


def evaluation_settings(config) -> dict:
    """What notebook 04 reads: the models (its variants), the metric settings and the bootstrap seed. Written into
    the results manifest and make's step stamp."""
    return config.select(("models", "metrics", "seeds.bootstrap", "ablation", "personas.survey"))


def metric_settings(config) -> dict:
    m = config.metrics
    return asdict(m) | {
        "sacrebleu_signature": metrics.sacrebleu_corpus(["a"], ["a"], m.bleu_tokenize, m.bleu_smooth_method,
                                                        m.bleu_lowercase)[1],
        "bleu_nltk": "sentence_bleu, 4-gram uniform, SmoothingFunction().method1, lower-cased whitespace tokens, "
                     "mean over examples",
        "bootstrap": f"{m.bootstrap_samples} persona resamples, seed {config.seeds.bootstrap}, 95 % percentile "
                     "intervals",
    }


def evaluate(config, split: str = "test") -> dict[str, pd.DataFrame]:
    """All tables of the study for `split`, written under the run's results folder (`config.paths(split)`)."""
    where = config.paths(split)
    profile = where.name
    test, train = load_split(config, split), load_split(config, "train")
    predictions = load_predictions(config, split)
    predictions[BASELINE] = retrieval_baseline(train, test)
    frame = add_scores(answers_frame(test, predictions), config.metrics)
    cells = answers_frame(test, {CELL_BASELINE: demographic_cell_baseline(train, test)})
    frame = pd.concat([frame, add_scores(cells, config.metrics)], ignore_index=True) if len(cells) else frame
    tables = compute_tables(config, frame)
    # Fidelity and diversity need the persona cards, which the stored answers do not carry: not in check_results.
    cards = {r["persona_id"]: r["persona"] for r in test}
    fidelity, tables["diversity"] = fidelity_and_diversity(frame, cards)
    tables["persona_fidelity"] = with_intervals(fidelity, ("own_card_sim", "other_card_sim", "fidelity_gap"),
                                                persona_resamples(config))
    bank = config.bank
    tables["subgroup_alignment"] = subgroup_alignment(
        frame, cards, linked_items(bank), {q.question_id: list(q.options) for q in bank.questions},
        config.survey)
    out = where.tables
    for name, table in tables.items():
        write_table(table, out / name, caption=f"{name.replace('_', ' ')} ({profile} profile)")
    # The answers and their scores, kept with the results: `make check-results` recomputes every table from them.
    atomic_write_text(where.results / "per_example_scores.csv",
                      frame.to_csv(index=False, float_format="%.6f"))
    settings = metric_settings(config)
    atomic_write_json(where.results / "metric_settings.json", settings)
    # Drawn from the tables as written (4 decimals): float noise below that (BERTScore's float32 sums differ in the
    # 8th digit between runs) would otherwise change the PDFs' bytes from one run of the same params to the next.
    metric_figures(written_tables(out, ("model_comparison", "domain_metrics")), where.figures, profile)
    survey = config.survey
    distribution_figure(frame, bank, item_distributions(survey, config.seeds.bootstrap)[0], survey.title,
                        where.figures / "answer_distributions")
    subgroup_distribution_figure(frame, cards, linked_items(bank), survey,
                                 where.figures / "answer_distributions_by_subgroup")
    write_section(where.results, "metrics", metrics_section(config, tables, profile))
    atomic_write_json(where.results / "manifest.json", provenance_record(
        params=config.to_dict(), seeds=asdict(config.seeds), step="04_metrics", metric_settings=settings,
        settings=evaluation_settings(config), split=split,
        inputs={f"predictions/{p.name}": sha256_file(p) for p in where.predictions.glob("*.jsonl")}
        | {f"data/{split}.jsonl": sha256_file(where.data / f"{split}.jsonl")},
        # the tables this step wrote: the folder also holds notebook 01's and 06's, and whatever an older version left
        outputs={f"{name}.csv": sha256_file(out / f"{name}.csv") for name in sorted(tables)}))
    return tables


def check_results(config) -> list[TableCheck]:
    """Recompute every table from the stored answers (per_example_scores.csv, text columns only) and compare each
    with the stored one within the declared tolerances (`reporting.checks`)."""
    where = config.paths()
    stored = pd.read_csv(where.results / "per_example_scores.csv", keep_default_na=False,
                         na_values={"parsed_option": [""]})
    answers = stored[list(ANSWER_COLUMNS)].copy()
    answers["parsed_option"] = answers.parsed_option.astype(object).where(answers.parsed_option.notna(), None)
    tables = compute_tables(config, add_scores(answers, config.metrics))
    return check_tables(tables, where.tables)
