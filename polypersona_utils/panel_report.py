"""Notebook 06: the synthetic panel of every variant and the statistician's references, scored against the
held-out real panel; tables, figures, the results README's panel section, and `check_panel` for check-results."""
from __future__ import annotations

import math
from dataclasses import asdict

import numpy as np
import pandas as pd

from .panel import (dataset_persona_ids, held_out_panel, order_effect, panel_frame, sampled_option, score_panel,
                    subgroup_variables)
from .panel_evaluation import panel_tables, population_effects, with_answer_columns
from .panel_paired import panel_paired
from .panel_references import ANCHORS, REFERENCE_VARIANTS, reference_distributions
from .panel_stacking import panel_stacking
from .provenance import atomic_write_json, atomic_write_text, provenance_record, sha256_file, write_jsonl
from .reporting import tables_that_differ, write_table
from .respondents import PanelRespondent, linked_questions
from .surveys import load_survey

DISTRIBUTIONS_FILE = "panel_distributions.csv"


def panel_settings(config) -> dict:
    """What notebook 06 reads: written into its provenance and make's step stamp."""
    return config.select(("models", "panel", "personas.survey", "seeds.panel", "seeds.sampling", "seeds.bootstrap",
                          "seeds.training", "generation.temperature", "training.quantization",
                          "training.compute_dtype", "ablation", "metrics.bootstrap_samples"))


def panel_size(config) -> int | None:
    return config.panel.ablation_respondents if config.run else config.panel.respondents


def respondents_of(config) -> tuple[list[PanelRespondent], list[PanelRespondent]]:
    """(held-out panel, training respondents): the panel is disjoint from every persona of the dataset; the
    references are fitted on the respondents the run trained on (all their linked answers)."""
    from .dataset import load_split

    train_ids = {r["persona_id"] for r in load_split(config, "train")}
    panel = held_out_panel(config, dataset_persona_ids(config), panel_size(config), config.seeds.panel)
    train = held_out_panel(config, set(), None, config.seeds.panel, only=train_ids)
    return panel, train


def anchor_pool(config, panel) -> list[PanelRespondent] | None:
    """The main run's anchors are fitted on every eligible respondent outside its panel; an ablation run (and a
    profile with `panel.anchors: false`) has none."""
    if config.run or not config.panel.anchors:
        return None
    return held_out_panel(config, {r.persona_id for r in panel}, None, config.seeds.panel)


def reference_rows(config, panel, train, questions) -> dict[str, list[dict]]:
    distributions = reference_distributions(train, panel, questions, config.panel.cell_smoothing,
                                            config.seeds.training, anchor_pool(config, panel))
    out = {}
    for variant, by_pair in distributions.items():
        rows = []
        for index, respondent in enumerate(panel):
            for item_index, qid in enumerate(sorted(respondent.answers)):
                probabilities = by_pair[respondent.persona_id, qid]
                options = list(questions[qid].options)
                rows.append({"persona_id": respondent.persona_id, "question_id": qid,
                             "survey_item": questions[qid].survey_item, "options": options,
                             "probabilities": [round(float(p), 6) for p in probabilities],
                             "sampled_option": sampled_option(probabilities, options, config.generation.temperature,
                                                              (config.seeds.sampling, index, item_index)),
                             "real_option": respondent.answers[qid], "variant": variant})
        out[variant] = rows
    return out


def distributions_csv(frame: pd.DataFrame, variables: tuple[str, ...]) -> str:
    columns = ["variant", "persona_id", "question_id", "options", "probabilities", "real_option", "sampled_option",
               *variables]
    out = frame[columns].copy()
    out["options"] = out.options.map("|".join)
    out["probabilities"] = out.probabilities.map(lambda p: "|".join(f"{x:.6f}" for x in p))
    return out.to_csv(index=False)


def read_distributions(path) -> pd.DataFrame:
    frame = pd.read_csv(path, keep_default_na=False)
    frame["options"] = frame.options.str.split("|")
    frame["probabilities"] = frame.probabilities.map(lambda s: [float(x) for x in s.split("|")])
    return frame


def population_frame(config) -> pd.DataFrame:
    """Every eligible respondent's real answers, with subgroups: the pool of the human ceiling."""
    everyone = held_out_panel(config, set(), None, config.seeds.panel)
    from .questions import load_question_bank

    questions = {q.question_id: q for q in linked_questions(load_question_bank(config.questions.bank_path))}
    rows = [{"persona_id": r.persona_id, "question_id": qid, "options": list(questions[qid].options),
             "probabilities": [float(o == r.answers[qid]) for o in questions[qid].options],
             "real_option": r.answers[qid], "variant": "population"}
            for r in everyone for qid in sorted(r.answers)]
    return panel_frame(rows, {r.persona_id: r for r in everyone})


def compute_panel_tables(config, frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
    samples, seed, least = config.metrics.bootstrap_samples, config.seeds.bootstrap, config.panel.min_cell_respondents
    variables = subgroup_variables(load_survey(config.personas.survey))
    population = population_frame(config)
    tables = panel_tables(frame, population, samples, seed, least, variables)
    answers = with_answer_columns(frame)
    present = list(dict.fromkeys(frame.variant))
    models = [v for v in present if v not in REFERENCE_VARIANTS and v not in ANCHORS]
    references = [v for v in (*REFERENCE_VARIANTS, *ANCHORS) if v in present]
    real_effects = population_effects(with_answer_columns(population), variables)
    tables["panel_paired"] = panel_paired(answers, samples, seed, least, variables, real_effects, models, references)
    tables["panel_stacking"] = panel_stacking(answers, samples, seed)
    return tables


def order_effect_table(scored: dict[str, list[dict]], http_samples: int) -> pd.DataFrame:
    """Per scored variant, the mean order effect (`panel.order_effect`); for served models (their rows count the
    samples that named no option) also the share of such samples, of two orders x `http_samples` a row."""
    table = pd.DataFrame([{"variant": name, "mean_total_variation": order_effect(rows)}
                          for name, rows in scored.items()], columns=["variant", "mean_total_variation"])
    served = {name: sum(r["unparseable_samples"] for r in rows) / (2 * http_samples * len(rows))
              for name, rows in scored.items() if rows and "unparseable_samples" in rows[0]}
    if served:
        table["unparseable_sample_share"] = table.variant.map(served)
    return table


def run_panel(config, progress: bool = True) -> dict[str, pd.DataFrame]:
    from .figures import panel_figures
    from .generation import variants
    from .questions import load_question_bank
    from .results_readme import write_section

    where = config.paths()
    panel, train = respondents_of(config)
    questions = {q.question_id: q for q in linked_questions(load_question_bank(config.questions.bank_path))}
    rows, scored = [], {}
    for variant in variants(config):
        scored[variant.name] = score_panel(config, variant, panel, where.artifacts / "panel" / f"{variant.name}.jsonl",
                                           progress)
        rows += scored[variant.name]
    for variant, variant_rows in reference_rows(config, panel, train, questions).items():
        write_jsonl(where.artifacts / "panel" / f"{variant}.jsonl", variant_rows)
        rows += variant_rows
    frame = panel_frame(rows, {r.persona_id: r for r in panel})
    survey = load_survey(config.personas.survey)
    atomic_write_text(where.results / DISTRIBUTIONS_FILE, distributions_csv(frame, subgroup_variables(survey)))
    tables = compute_panel_tables(config, frame)
    tables["panel_order_effect"] = order_effect_table(scored, config.panel.http_samples)
    for name, table in tables.items():
        write_table(table, where.tables / name, caption=f"{name.replace('_', ' ')} ({where.name})")
    panel_figures(frame, tables, where.figures, where.name)
    write_section(where.results, "panel", panel_section(config, tables, len(panel), len(train), survey.title,
                                                        [len(questions[q].options) for r in panel for q in r.answers]))
    write_section(where.results, "verdict", verdict_section(tables, len(panel)))
    atomic_write_json(where.results / "provenance" / "06_panel.json", provenance_record(
        config.to_dict(), asdict(config.seeds), {"distributions": sha256_file(where.results / DISTRIBUTIONS_FILE)},
        step="06_panel", respondents=len(panel), training_respondents=len(train), settings=panel_settings(config)))
    return tables


RENAMED = {"baseline-demographic-cell": "baseline-cell-smoothed"}  # the same method, under its earlier name


def refresh_panel(config) -> dict[str, pd.DataFrame]:
    """Notebook 06's tables, figures and README sections recomputed from the stored distributions, scoring and
    fitting nothing: for results made before a change to the panel's measures. Variants keep the distributions
    their run stored (its references are the ones that run fitted; `RENAMED` names are updated); the order-effect
    table, which needs both orders' probabilities, stays as stored."""
    import json

    from .figures import panel_figures
    from .results_readme import write_section

    where = config.paths()
    frame = read_distributions(where.results / DISTRIBUTIONS_FILE)
    frame["variant"] = frame.variant.replace(RENAMED)
    survey = load_survey(config.personas.survey)
    atomic_write_text(where.results / DISTRIBUTIONS_FILE, distributions_csv(frame, subgroup_variables(survey)))
    tables = compute_panel_tables(config, frame)
    for name, table in tables.items():
        write_table(table, where.tables / name, caption=f"{name.replace('_', ' ')} ({where.name})")
    tables["panel_order_effect"] = pd.read_csv(where.tables / "panel_order_effect.csv")
    panel_figures(frame, tables, where.figures, where.name)
    stored = json.loads((where.results / "provenance" / "06_panel.json").read_text(encoding="utf-8"))
    respondents = frame.persona_id.nunique()
    counts = [len(o) for o in frame[frame.variant == frame.variant.iloc[0]].options]
    write_section(where.results, "panel", panel_section(config, tables, respondents, stored["training_respondents"],
                                                        survey.title, counts))
    write_section(where.results, "verdict", verdict_section(tables, respondents))
    return tables


def check_panel(config) -> list[str]:
    """Tables recomputed from the stored distributions that differ from the stored ones (empty: reproduced)."""
    where = config.paths()
    stored = where.results / DISTRIBUTIONS_FILE
    if not stored.exists():
        return []
    tables = compute_panel_tables(config, read_distributions(stored))
    return tables_that_differ(tables, where.tables)


def verdict_section(tables: dict[str, pd.DataFrame], respondents: int) -> str:
    """The results README's first paragraph: the best variant on log-loss and on subgroup effects, and each model
    against the persona-blind marginal, the best reference fitted on the same respondents and the best anchor, by
    paired differences (model minus reference, on the same respondent-bootstrap draws)."""
    individual = tables["panel_individual"].set_index("variant")
    effects = tables["panel_effects"].set_index("variant")
    paired = tables["panel_paired"]

    def against(rows, reference: str) -> str:
        row = rows.loc[reference]
        return (f"{row.difference:+.3f} [{row.difference_lo:+.3f}, {row.difference_hi:+.3f}] against "
                f"`{reference}`")

    best_loss, best_slope = individual.log_loss.idxmin(), effects.slope.idxmax()
    sentences = [f"On {respondents} held-out real respondents the best predictor of each person's answer is "
                 f"`{best_loss}` (log-loss {individual.loc[best_loss, 'log_loss']:.3f}), and the variant whose "
                 f"subgroups differ most as the survey's do is `{best_slope}` (subgroup-effect slope "
                 f"{effects.loc[best_slope, 'slope']:.3f}; 1 would match the real differences)."]
    same_data = [v for v in REFERENCE_VARIANTS if v in individual.index]
    anchors = [v for v in ANCHORS if v in individual.index]
    for model in dict.fromkeys(paired.variant):
        rows = paired[paired.variant == model]
        loss = rows[rows.measure == "log_loss"].set_index("reference")
        slope = rows[rows.measure == "subgroup_effect_slope"].set_index("reference")
        compared = ["baseline-population", min(same_data, key=lambda v: individual.loc[v, "log_loss"])]
        compared += [min(anchors, key=lambda v: individual.loc[v, "log_loss"])] if anchors else []
        strongest = max(same_data, key=lambda v: effects.loc[v, "slope"])
        sentences.append(f"`{model}`: log-loss {individual.loc[model, 'log_loss']:.3f}, "
                         + ", ".join(against(loss, r) for r in dict.fromkeys(compared))
                         + f"; subgroup-effect slope {effects.loc[model, 'slope']:.3f}, "
                         + against(slope, strongest) + " (paired differences, model minus reference).")
    return "## Verdict\n\n" + " ".join(sentences) + "\n"


def interval(row, name: str) -> str:
    return f"{row[name]:.3f} [{row[name + '_lo']:.3f}, {row[name + '_hi']:.3f}]"


NUMBER_WORDS = {2: "two", 3: "three", 4: "four", 5: "five"}


def panel_section(config, tables: dict[str, pd.DataFrame], respondents: int, training: int, survey_title: str,
                  option_counts: list[int]) -> str:
    """The results README's panel section: each model variant against each reference, in words."""
    alignment = tables["panel_alignment"]
    overall = alignment[alignment.variable == "all"].set_index("variant")
    by_party = alignment[alignment.variable == "party"]
    individual = tables["panel_individual"].set_index("variant")
    effects = tables["panel_effects"].set_index("variant")
    lines = ["## The synthetic panel against held-out real respondents (notebook 06)", "",
             f"{respondents} real {survey_title} respondents who are in no split of this dataset, each asked every "
             f"linked item they answered; every variant's probability of each option (option log-likelihoods, averaged "
             f"over the given and the reversed option order) against their real answers. References fitted on the "
             f"{training} training respondents only (`baseline-logistic` and `baseline-boosting` see every field of "
             "the card, tuned by cross-validation on those respondents); the `anchor-*` rows are the same two "
             "methods fitted on every eligible respondent outside the panel. Tables: `tables/panel_*`; figures: "
             "`figures/panel_*`.", "",
             "| variant | alignment (all) | party: mean alignment | log-loss | accuracy | subgroup-effect correlation "
             "| subgroup-effect slope |", "|---|---|---|---|---|---|---|"]
    for variant in list(overall.index):
        party = by_party[by_party.variant == variant].alignment.mean()
        ind = individual.loc[variant] if variant in individual.index else None
        eff = effects.loc[variant] if variant in effects.index else None
        lines.append(f"| `{variant}` | {interval(overall.loc[variant], 'alignment')} | {party:.3f} | "
                     + (f"{interval(ind, 'log_loss')} | {interval(ind, 'accuracy')} | " if ind is not None else "- | - | ")
                     + (f"{interval(eff, 'correlation')} | {interval(eff, 'slope')} |" if eff is not None
                        else "- | - |"))
    lines += [""]
    paired = tables["panel_paired"]
    for _, row in paired.iterrows():
        better = "lower" if row.measure == "log_loss" else "higher"
        word = (("better" if (row.difference_hi < 0) == (better == "lower") else "worse")
                if row.difference_lo > 0 or row.difference_hi < 0 else "not told apart")
        lines.append(f"- `{row.variant}` against `{row.reference}` on {row.measure.replace('_', ' ')}: {word} "
                     f"(difference {row.difference:+.3f} [{row.difference_lo:+.3f}, {row.difference_hi:+.3f}], "
                     f"paired on the same respondent-bootstrap draws; {better} is better).")
    subpop = tables["panel_subpop_units"].set_index("variant").wasserstein_per_option_gap
    stacking = tables["panel_stacking"]
    lines += ["", "In SubPOP's units (mean over subgroup x item cells of W1 / (options - 1); SubPOP's held-out GSS "
              "2022 figures: fine-tuned 7B 0.121, uniform 0.208, human floor 0.033): "
              + ", ".join(f"`{v}` {x:.3f}" for v, x in subpop.items()) + " (`tables/panel_subpop_units`)."]
    for _, row in stacking.iterrows():
        lines.append(f"- Stacking `{row.variant}` on `{row.card_regression}` (cross-fitted on the panel, "
                     f"`tables/panel_stacking`): log-loss {row.log_loss_without:.3f} without the model, "
                     f"{row.log_loss_with:.3f} with it, gain {row.gain:+.3f} [{row.gain_lo:+.3f}, {row.gain_hi:+.3f}].")
    sizes = sorted(set(option_counts))
    uniform = (f"ln {sizes[0]} = {math.log(sizes[0]):.3f} on these {NUMBER_WORDS.get(sizes[0], sizes[0])}-option items"
               if len(sizes) == 1 else f"{np.mean(np.log(option_counts)):.3f} on these items (mean of ln options)")
    lines += ["", f"A uniform guess has log-loss {uniform}. `1 - W1/W1max` is close to 1 "
              "for any sensible distribution; the subgroup-effect correlation (how a subgroup's mean answer differs "
              "from the whole panel's, synthetic against real, over item x subgroup cells) is what says whether the "
              "persona carries.", ""]
    return "\n".join(lines)
