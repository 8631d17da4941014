"""Notebook 05: the main run and every finished ablation run in one table, each run against the reference run on
the same test records (paired persona bootstrap), figures and `results/<profile>/ablations.md`. The runs themselves
are defined in `ablations`."""
from __future__ import annotations

import json

import pandas as pd

from .. import paths
from ..config import load_config
from ..provenance import atomic_write_json, atomic_write_text, provenance_record, sha256_file
from ..reporting.readme import write_section
from ..reporting.tables import write_table
from ..stats import MIN_PERSONAS_FOR_INTERVALS, paired_differences
from .ablations import reference_run
from .figures import ablation_figures

SUMMARY_METRICS = ("bleu_nltk", "rouge1", "bertscore_f1")
DIFFERENCE_COLUMNS = ["comparison", "metric", "difference", "low", "high", "personas", "model", "records"]


def run_folder(profile: str, run: str):
    return paths.RunPaths(profile, run).results


def run_summary(profile: str, run: str, overrides: dict) -> list[dict]:
    """One row per model variant of a finished run: headline metrics, persona fidelity, agreement with the real
    respondents, and training cost."""
    folder = run_folder(profile, run)
    tables = folder / "tables"
    table = pd.read_csv(tables / "model_comparison.csv")
    extra = {}
    for name, columns in (("persona_fidelity", ["fidelity_gap", "fidelity_gap_low", "fidelity_gap_high"]),
                          ("closed_alignment", ["agreement_with_respondent"]),
                          ("panel_individual", ["log_loss", "log_loss_lo", "log_loss_hi"]),
                          ("panel_effects", ["correlation", "correlation_lo", "correlation_hi"])):
        if (tables / f"{name}.csv").exists():
            # reindex, not []: a table from an older or empty run may lack a column; it reads as missing.
            frame = pd.read_csv(tables / f"{name}.csv").set_index("variant").reindex(columns=columns)
            extra[name] = frame.add_prefix("panel_") if name.startswith("panel_") else frame
    answers = pd.read_csv(folder / "per_example_scores.csv", keep_default_na=False) if (
        folder / "per_example_scores.csv").exists() else None
    training = json.loads((folder / "training_metrics.json").read_text()) if (
        folder / "training_metrics.json").exists() else {}
    rows = []
    for _, row in table.iterrows():
        model = row.variant.rsplit("-", 1)[0]
        cost = training.get(model, {}) if row.variant.endswith("-lora") else {}
        more = {column: frame.loc[row.variant, column] if row.variant in frame.index else None
                for frame in extra.values() for column in frame.columns}
        rows.append({"run": run or "main", "overrides": json.dumps(overrides, sort_keys=True), **row.to_dict(),
                     **more, **top_answer(answers, row.variant), "train_examples": cost.get("train_examples"),
                     "trainable_parameters": cost.get("trainable_parameters"),
                     "train_wall_s": cost.get("wall_time_s_this_session"),
                     "peak_process_memory_gib": cost.get("peak_process_memory_gib")})
    return rows


def top_answer(answers: pd.DataFrame | None, variant: str) -> dict:
    """The variant's most frequent answer text and its share of all answers: a collapsed model (one answer to
    every question) shows here before it shows in any mean."""
    if answers is None or "prediction" not in answers or variant not in set(answers.variant):
        return {"top_answer": None, "top_answer_share": None}
    counts = answers[answers.variant == variant].prediction.value_counts()
    return {"top_answer": counts.index[0][:40], "top_answer_share": counts.iloc[0] / counts.sum()}


def finished_runs(profile: str) -> dict[str, dict]:
    """Ablation run name -> its overrides, for every run whose metrics exist."""
    root = paths.results_dir(profile) / "runs"
    runs = {}
    for folder in sorted(root.glob("*/")) if root.exists() else []:
        if (folder / "tables" / "model_comparison.csv").exists():
            overrides = folder / "overrides.json"
            runs[folder.name] = json.loads(overrides.read_text()) if overrides.exists() else {}
    return runs


def collect(profile: str) -> pd.DataFrame:
    """The main run and every finished ablation run of the profile in one table."""
    rows = run_summary(profile, "", {})
    for run, overrides in finished_runs(profile).items():
        rows += run_summary(profile, run, overrides)
    return pd.DataFrame(rows)


def cross_run_differences(profile: str, columns=SUMMARY_METRICS) -> pd.DataFrame:
    """Each ablation run's fine-tuned answers minus the reference run's, on the test records both answered,
    personas resampled jointly (the paired bootstrap of `stats.paired_differences`)."""
    config = load_config(profile)
    reference = reference_run(config)
    scores = {run: pd.read_csv(run_folder(profile, run) / "per_example_scores.csv")
              for run in finished_runs(profile) if (run_folder(profile, run) / "per_example_scores.csv").exists()}
    if reference not in scores:
        return pd.DataFrame(columns=DIFFERENCE_COLUMNS)
    ref = scores.pop(reference)
    parts = []
    for run, frame in scores.items():
        for variant in sorted(v for v in frame.variant.unique() if v.endswith("-lora")):
            a, b = frame[frame.variant == variant], ref[ref.variant == variant]
            common = sorted(set(a.id) & set(b.id))
            if not common:
                continue
            pair = pd.concat([a[a.id.isin(common)].assign(variant=run), b[b.id.isin(common)].assign(variant=reference)])
            diff = paired_differences(pair, columns, config.seeds.bootstrap, config.metrics.bootstrap_samples,
                                      run, reference)
            parts.append(diff.assign(model=variant, records=len(common)))
    if not parts:
        return pd.DataFrame(columns=DIFFERENCE_COLUMNS)
    return pd.concat(parts, ignore_index=True)


def describe_difference(run: str, overrides: dict, rows: pd.DataFrame, reference: str) -> str:
    """One sentence per ablation: what it changed, the paired ROUGE-1 and BERTScore differences with intervals,
    and whether the embedded scale can tell it apart from the reference."""
    what = ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(overrides.items())) or "no change"
    parts, separated = [], []
    for metric in ("rouge1", "bertscore_f1"):
        row = rows[rows.metric == metric].iloc[0]
        parts.append(f"{metric} {row.difference:+.3f} [{row.low:+.3f}, {row.high:+.3f}]")
        if row.low > 0 or row.high < 0:
            separated.append(f"{metric} {'higher' if row.low > 0 else 'lower'}")
    personas, records = int(rows.personas.iloc[0]), int(rows.records.iloc[0])
    verdict = (f"the interval excludes zero ({', '.join(separated)} than `{reference}`)" if separated else
               f"the intervals include zero: at this scale it cannot be told apart from `{reference}`")
    caveat = (f" Only {personas} test personas: too few to say anything." if personas < MIN_PERSONAS_FOR_INTERVALS
              else "")
    return (f"- `{run}` ({what}), {records} records of {personas} personas, minus `{reference}` on the same records: "
            f"{'; '.join(parts)}; {verdict}.{caveat}")


def ablation_report(profile: str) -> pd.DataFrame:
    """Notebook 05: the ablation tables (CSV, Markdown, LaTeX), figures and `results/<profile>/ablations.md`."""
    config = load_config(profile)
    reference = reference_run(config)
    table = collect(profile)
    lora = table[table.variant.str.endswith("-lora")].reset_index(drop=True)
    differences = cross_run_differences(profile)
    write_table(table, paths.tables_dir(profile) / "ablations", caption=f"ablations ({profile} profile)")
    write_table(differences, paths.tables_dir(profile) / "ablation_differences",
                caption=f"ablation runs minus {reference}, paired on the same test records ({profile} profile)")
    ablation_figures(profile, lora, differences, SUMMARY_METRICS, reference, config.lora.r)

    def fmt(row, metric):
        return f"{row[metric]:.3f} [{row[f'{metric}_low']:.3f}, {row[f'{metric}_high']:.3f}]"

    subset = config.ablation_runs
    lines = [f"# Ablations: {profile} profile", "",
             f"Each ablation run is notebooks 02-04 rerun with the parameters shown, on a fixed persona subset of the "
             f"profile's splits (train {subset.train_personas or 'all'}, validation {subset.val_personas or 'all'}, "
             f"test {subset.test_personas or 'all'} personas; `ablation_runs` in `params/{profile}.yaml`). "
             f"`{reference}` is the profile's own settings on that subset: every other run is compared with it "
             "record by record. `main` is the full study (whole splits), shown for scale, not for comparison.", "",
             "## Fine-tuned variant per run", "",
             "Means with 95 % persona-bootstrap intervals on each run's test records; `fidelity_gap` is the open "
             "answers' similarity to their own persona card minus a mismatched card; `agreement_with_respondent` "
             "is the share of linked closed questions answered as the real survey respondent did; `top_answer_share` "
             "is the share of all answers that are the run's most frequent answer text (`top_answer`), open "
             "questions included: a high share means the model collapsed onto one answer.", "",
             lora[[c for c in ("run", "overrides", "n", "personas", "bleu_nltk", "rouge1", "bertscore_f1",
                               "fidelity_gap", "agreement_with_respondent", "top_answer", "top_answer_share",
                               "train_examples", "trainable_parameters",
                               "train_wall_s", "peak_process_memory_gib") if c in lora.columns]
                  ].to_markdown(index=False, floatfmt=".3f"), ""]
    for _, row in lora.iterrows():
        caveat = (f" Only {int(row.personas)} test personas: too few to say anything." if row.personas <
                  MIN_PERSONAS_FOR_INTERVALS else "")
        top = (f" Most frequent answer: {row.top_answer!r} ({row.top_answer_share:.0%} of all answers)."
               if isinstance(row.get("top_answer"), str) else "")
        lines.append(f"- `{row.run}`: BLEU {fmt(row, 'bleu_nltk')}, ROUGE-1 {fmt(row, 'rouge1')}, BERTScore "
                     f"{fmt(row, 'bertscore_f1')}.{top}{caveat}")
    with_panel = lora[lora.panel_log_loss.notna()] if "panel_log_loss" in lora.columns else lora.iloc[:0]
    if len(with_panel):
        lines += ["", "## The synthetic panel per run (`make ablation-panels`)", "",
                  f"Notebook 06 on each run's adapter: its answer distributions for a fixed panel of "
                  f"{config.panel.ablation_respondents} held-out real respondents (the main run: "
                  f"{config.panel.respondents}), log-loss of each respondent's real answer and subgroup-effect "
                  "correlation, with respondent-bootstrap intervals; `tables/panel_*` in each run's folder. The "
                  "references of each run are fitted on that run's training personas only.", ""]
        for _, row in with_panel.iterrows():
            lines.append(f"- `{row.run}`: log-loss {row.panel_log_loss:.3f} [{row.panel_log_loss_lo:.3f}, "
                         f"{row.panel_log_loss_hi:.3f}], subgroup-effect correlation {row.panel_correlation:.2f} "
                         f"[{row.panel_correlation_lo:.2f}, {row.panel_correlation_hi:.2f}]")
    lines += ["", f"## Each ablation against `{reference}` (paired on the same test records)", ""]
    runs = finished_runs(profile)
    comparisons = []
    for (comparison, model), rows in differences.groupby(["comparison", "model"], sort=True):
        run = comparison.split(" - ")[0]
        comparisons.append(describe_difference(run, runs.get(run, {}), rows, reference))
    if not comparisons:
        comparisons = [f"No paired comparison: the reference run `{reference}` has not finished "
                       f"(`make ablation NAME={reference} PROFILE={profile}`)."]
    lines += comparisons
    lines += ["", "A held-out run's records are the held-out domain's test records, so its comparison is held-out "
              "against in-domain training on the same questions and personas. Rank runs change trainable "
              "parameters and memory (table above) as well as quality.", "",
              "Overlapping intervals mean the embedded scale cannot separate the settings; the paper profile "
              "(`make ablations PROFILE=paper`) is where the differences can show.", ""]
    atomic_write_text(paths.results_dir(profile) / "ablations.md", "\n".join(lines))
    write_section(paths.results_dir(profile), "ablations", "\n".join([
        "## Ablations (notebook 05)", "",
        f"Each ablation run against `{reference}` on the same test records (fine-tuned variant, paired 95 % "
        "persona-bootstrap intervals); the runs, their design and costs are in `ablations.md`.", "", *comparisons]))
    inputs = {f"{run}/per_example_scores.csv": sha256_file(run_folder(profile, run) / "per_example_scores.csv")
              for run in runs if (run_folder(profile, run) / "per_example_scores.csv").exists()}
    atomic_write_json(paths.results_dir(profile) / "provenance" / "05_ablations.json", provenance_record(
        config.to_dict(), {"bootstrap": config.seeds.bootstrap, "split": config.seeds.split}, inputs,
        runs=runs, reference=reference))
    return table
