"""Notebook 06: the synthetic panel of every variant and the statistician's references, scored against the
held-out real panel; tables, figures, the results README's panel section, and `check_panel` for check-results."""
from __future__ import annotations

import json
import time
from dataclasses import asdict

import pandas as pd

from ..modeling.training import training_settings
from ..provenance import atomic_write_json, atomic_write_text, provenance_record, sha256_file, write_jsonl
from ..reporting.readme import write_section
from ..reporting.checks import TableCheck, check_tables
from ..reporting.tables import write_table
from ..study import StudyRun
from .figures import panel_figures
from .measures import panel_tables, population_effects, with_answer_columns
from .new_items import item_blind_distributions
from .paired import panel_models, panel_paired
from .readme import new_items_sentence, panel_section, verdict_section
from .references import ANCHORS, ITEM_BLIND, REFERENCE_VARIANTS, model_variants, reference_distributions
from .stacking import panel_stacking, stacked
from .synthetic import order_effect, panel_frame, sampled_option, score_panel, subgroup_variables
from .verdict import panel_verdict
from .worth import panel_worth, worth_predictors

DISTRIBUTIONS_FILE = "panel_distributions.csv"


def panel_settings(config) -> dict:
    """What notebook 06 reads: written into its provenance and make's step stamp."""
    return config.select(("models", "panel", "personas.survey", "seeds.panel", "seeds.sampling", "seeds.bootstrap",
                          "seeds.training", "seeds.worth", "generation.temperature", "training.quantization",
                          "training.compute_dtype", "ablation", "metrics.bootstrap_samples"))


def result_settings(config) -> dict:
    """What a run's panel result depends on: notebook 02's training settings and notebook 06's panel settings, as
    JSON reads them back (recorded in the panel's provenance; `runs.learning_curve.missing_points` compares them)."""
    return json.loads(json.dumps({"training": training_settings(config), "panel": panel_settings(config)}))


def reference_rows(run: StudyRun) -> dict[str, list[dict]]:
    """Each reference's and anchor's distributions over the panel's pairs, as panel rows."""
    config, panel, questions = run.config, run.panel, run.linked_questions
    distributions = reference_distributions(run.training_respondents, panel, questions, config.panel.cell_smoothing,
                                            config.seeds.training, run.anchor_pool)
    if config.ablation.heldout_items:  # a new-items fold: references that never see the held-out answers
        distributions |= item_blind_distributions(run.training_respondents, panel, questions,
                                                  config.ablation.heldout_items, config.seeds.training)
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


def population_frame(run: StudyRun) -> pd.DataFrame:
    """Every eligible respondent's real answers, with subgroups: the pool of the human ceiling."""
    everyone, questions = run.eligible, run.linked_questions
    rows = [{"persona_id": r.persona_id, "question_id": qid, "options": list(questions[qid].options),
             "probabilities": [float(o == r.answers[qid]) for o in questions[qid].options],
             "real_option": r.answers[qid], "variant": "population"}
            for r in everyone for qid in sorted(r.answers)]
    return panel_frame(rows, {r.persona_id: r for r in everyone})


def compute_panel_tables(run: StudyRun, frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
    config = run.config
    samples, seed, least = config.metrics.bootstrap_samples, config.seeds.bootstrap, config.panel.min_cell_respondents
    variables = subgroup_variables(config.survey)
    answers, population = with_answer_columns(frame), with_answer_columns(population_frame(run))
    tables = panel_tables(answers, population, samples, seed, least, variables)
    present = list(dict.fromkeys(frame.variant))
    references = [v for v in (*REFERENCE_VARIANTS, *ANCHORS, *ITEM_BLIND) if v in present]
    real_effects = population_effects(population, variables)
    tables["panel_paired"] = panel_paired(answers, samples, seed, least, variables, real_effects,
                                          model_variants(present), references)
    fits = stacked(answers, seed)
    tables["panel_stacking"] = panel_stacking(answers, samples, seed, fits)
    families = model_families(config)
    if len(families) > 1:
        tables["panel_models"] = panel_models(answers, samples, seed, least, variables, real_effects, families, fits)
    if not config.run:  # an ablation run's panel (`panel.ablation_respondents`) is smaller than the samples drawn
        tables["panel_worth"] = panel_worth(answers, worth_predictors(present, config.panel.worth.references),
                                            variables, config.panel.worth, config.seeds.worth)
    bases = {v.name: v.base_label(config.training.quantization) for v in run.variants}
    tables["panel_verdict"] = panel_verdict(answers, samples, seed, tables["panel_individual"], tables["panel_effects"],
                                            tables.get("panel_worth"), config.panel.worth.draws, bases)
    return tables


def order_effect_table(scored: dict[str, list[dict]], http_samples: int) -> pd.DataFrame:
    """Per scored variant, the mean order effect (`synthetic.order_effect`); for served models also how they were
    scored (`served_by`), the share of sampled answers that named no option (of two orders x `http_samples` a row
    scored by sampling; NaN where none was) and the share of options whose exact probability was bounded (of two
    orders x the options a row scored exactly; NaN where none was)."""
    table = pd.DataFrame([{"variant": name, "mean_total_variation": order_effect(rows)}
                          for name, rows in scored.items()], columns=["variant", "mean_total_variation"])
    served = {name: rows for name, rows in scored.items() if rows and "scored_by" in rows[0]}
    if served:
        def share(rows, method, count, per_row):
            chosen = [r for r in rows if r["scored_by"] == method]
            return sum(r[count] for r in chosen) / sum(per_row(r) for r in chosen) if chosen else float("nan")

        table["served_by"] = table.variant.map({name: "/".join(sorted({r["scored_by"] for r in rows}))
                                                for name, rows in served.items()})
        table["unparseable_sample_share"] = table.variant.map(
            {name: share(rows, "samples", "unparseable_samples", lambda r: 2 * http_samples)
             for name, rows in served.items()})
        table["bounded_option_share"] = table.variant.map(
            {name: share(rows, "tokens", "bounded_options", lambda r: 2 * len(r["options"]))
             for name, rows in served.items()})
    return table


def run_panel(config, progress: bool = True) -> dict[str, pd.DataFrame]:
    """Notebook 06 end to end: every variant's panel scored, the references fitted, tables, figures, README sections
    and provenance written."""
    run = StudyRun(config)
    where = config.paths()
    panel, train, questions = run.panel, run.training_respondents, run.linked_questions
    rows, scored, seconds = [], {}, {}
    for variant in run.variants:
        start = time.perf_counter()
        scored[variant.name] = score_panel(run, variant, panel, where.artifacts / "panel" / f"{variant.name}.jsonl",
                                           progress)
        seconds[variant.name] = round(time.perf_counter() - start, 1)  # respondents already cached cost nothing
        rows += scored[variant.name]
    for variant, variant_rows in reference_rows(run).items():
        write_jsonl(where.artifacts / "panel" / f"{variant}.jsonl", variant_rows)
        rows += variant_rows
    frame = panel_frame(rows, {r.persona_id: r for r in panel})
    survey = config.survey
    atomic_write_text(where.results / DISTRIBUTIONS_FILE, distributions_csv(frame, subgroup_variables(survey)))
    tables = compute_panel_tables(run, frame)
    tables["panel_order_effect"] = order_effect_table(scored, config.panel.http_samples)
    for name, table in tables.items():
        write_table(table, where.tables / name, caption=f"{name.replace('_', ' ')} ({where.name})")
    panel_figures(frame, tables, where.figures, where.name, survey.label_order(), config.panel.min_cell_respondents)
    write_section(where.results, "panel", panel_section(config, tables, len(panel), len(train), survey.title,
                                                        [len(questions[q].options) for r in panel for q in r.answers]))
    pairs = sum(len(r.answers) for r in panel)
    write_verdict(config, tables, len(panel), family_costs(config, seconds, pairs))
    atomic_write_json(where.results / "provenance" / "06_panel.json", provenance_record(
        config.to_dict(), asdict(config.seeds), {"distributions": sha256_file(where.results / DISTRIBUTIONS_FILE)},
        step="06_panel", respondents=len(panel), training_respondents=len(train), settings=panel_settings(config),
        result_settings=result_settings(config), scoring_seconds=seconds, pairs=pairs))
    return tables


def write_verdict(config, tables: dict[str, pd.DataFrame], respondents: int, costs: dict) -> None:
    """The results README's verdict section; the main run's opens with the learning curve's largest point where
    notebook 07 has written the curve's table, then with the panel on new questions where notebook 08 has written
    its table."""
    where = config.paths()
    curve = where.tables / "learning_curve.csv"
    new_items, folds = where.tables / "panel_new_items.csv", where.results / "provenance" / "08_new_items.json"
    sentence = None
    if new_items.exists() and folds.exists() and not config.run:
        record = json.loads(folds.read_text(encoding="utf-8"))
        scored = len(record["runs"])
        sentence = new_items_sentence(pd.read_csv(new_items), scored, scored + len(record.get("not_scored", [])))
    write_section(where.results, "verdict", verdict_section(
        tables, respondents, costs, (where.figures / "learning_curve.png").exists(),
        pd.read_csv(curve) if curve.exists() and not config.run else None, sentence))


def rewrite_verdict(config) -> None:
    """The verdict section written again from the stored panel tables, scoring and fitting nothing: notebooks 07
    and 08 call it once the curve's or the new items' table has changed. Nothing when the run has no panel
    results."""
    where = config.paths()
    provenance = where.results / "provenance" / "06_panel.json"
    if not provenance.exists():
        return
    stored = json.loads(provenance.read_text(encoding="utf-8"))
    tables = {path.stem: pd.read_csv(path) for path in sorted(where.tables.glob("panel_*.csv"))}
    write_verdict(config, tables, stored["respondents"],
                  family_costs(config, stored.get("scoring_seconds", {}), stored.get("pairs", 0)))


def model_families(config) -> list[str]:
    """The profile's locally run models, in order: the families `panel_models` compares."""
    return [m.name for m in config.models if m.backend == "local"]


def family_costs(config, scoring_seconds: dict[str, float], pairs: int) -> dict[str, dict[str, float]]:
    """Per model family of a study with more than one: training seconds per training record (notebook 02's run,
    `training_metrics.json`) and scoring seconds per respondent-item pair of its fine-tuned variant (this panel
    run's, model loading included), where recorded."""
    families = model_families(config)
    metrics = config.paths().training_results / "training_metrics.json"
    if len(families) < 2 or not metrics.exists():
        return {}
    trained = json.loads(metrics.read_text(encoding="utf-8"))
    costs = {}
    for family in families:
        cost = {}
        if family in trained and trained[family].get("wall_time_s_this_session"):
            cost["train_s_per_record"] = trained[family]["wall_time_s_this_session"] / trained[family]["train_examples"]
        if scoring_seconds.get(f"{family}-lora") and pairs:
            cost["score_s_per_pair"] = scoring_seconds[f"{family}-lora"] / pairs
        costs[family] = cost
    return costs


RENAMED = {"baseline-demographic-cell": "baseline-cell-smoothed"}  # the same method, under its earlier name


def refresh_panel(config) -> dict[str, pd.DataFrame]:
    """Notebook 06's tables, figures and README sections recomputed from the stored distributions, scoring and
    fitting nothing: for results made before a change to the panel's measures. Variants keep the distributions
    their run stored (its references are the ones that run fitted; `RENAMED` names are updated); the order-effect
    table, which needs both orders' probabilities, stays as stored."""
    where = config.paths()
    frame = read_distributions(where.results / DISTRIBUTIONS_FILE)
    frame["variant"] = frame.variant.replace(RENAMED)
    run = StudyRun(config)
    items = {qid: question.survey_item for qid, question in run.linked_questions.items()}
    frame["survey_item"] = frame.question_id.map(lambda qid: items.get(qid) or qid)  # figure titles
    survey = config.survey
    atomic_write_text(where.results / DISTRIBUTIONS_FILE, distributions_csv(frame, subgroup_variables(survey)))
    tables = compute_panel_tables(run, frame)
    for name, table in tables.items():
        write_table(table, where.tables / name, caption=f"{name.replace('_', ' ')} ({where.name})")
    tables["panel_order_effect"] = pd.read_csv(where.tables / "panel_order_effect.csv")
    panel_figures(frame, tables, where.figures, where.name, survey.label_order(), config.panel.min_cell_respondents)
    stored = json.loads((where.results / "provenance" / "06_panel.json").read_text(encoding="utf-8"))
    respondents = frame.persona_id.nunique()
    counts = [len(o) for o in frame[frame.variant == frame.variant.iloc[0]].options]
    write_section(where.results, "panel", panel_section(config, tables, respondents, stored["training_respondents"],
                                                        survey.title, counts))
    write_verdict(config, tables, respondents,
                  family_costs(config, stored.get("scoring_seconds", {}), stored.get("pairs", 0)))
    atomic_write_json(where.results / "provenance" / "06_panel_refresh.json", provenance_record(
        config.to_dict(), asdict(config.seeds), {"distributions": sha256_file(where.results / DISTRIBUTIONS_FILE)},
        step="06_panel_refresh", tables=sorted(tables), settings=panel_settings(config)))
    return tables


def check_panel(config) -> list[TableCheck]:
    """Every panel table recomputed from the stored distributions, compared with the stored one within the declared
    tolerances (`reporting.checks`); none when the run stored no distributions."""
    where = config.paths()
    stored = where.results / DISTRIBUTIONS_FILE
    if not stored.exists():
        return []
    tables = compute_panel_tables(StudyRun(config), read_distributions(stored))
    return check_tables(tables, where.tables)
