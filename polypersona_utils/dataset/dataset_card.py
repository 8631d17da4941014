"""Notebook 01's dataset card: `results/<profile>/dataset_card.md`, its tables and its figure."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from .. import paths
from ..provenance import atomic_write_text
from ..reporting.plots import pyplot, save_figure
from ..reporting.tables import profile_banner, write_table
from .demographics import demographics_comparison
from .splits import given_split_overlaps


def write_dataset_card(config, splits: dict[str, list[dict]], counts_long: pd.DataFrame, counts: dict,
                       panel) -> None:
    """results/<profile>/dataset_card.md, its tables and one figure."""
    profile = config.profile
    tables, figures = paths.tables_dir(profile), paths.figures_dir(profile)
    write_table(counts_long, tables / "dataset_counts", "records by split, domain, type and source")

    def by(column: str) -> pd.DataFrame:
        table = counts_long.pivot_table(index=column, columns="split", values="records", aggfunc="sum",
                                        fill_value=0)
        table = table.reindex(columns=[s for s in ("train", "val", "test") if s in table.columns])
        return table.assign(total=table.sum(axis=1)).reset_index()

    by_domain, by_type, by_source = by("domain"), by("question_type"), by("reference_source")
    cards = list({r["persona_id"]: r["persona"] for rows in splits.values() for r in rows}.values())
    survey = config.survey
    demographics = demographics_comparison(cards, survey)
    write_table(demographics, tables / "persona_demographics_vs_survey",
                f"persona panel against all {survey.title} respondents (percent)", float_format="%.1f")
    dataset_figure(counts_long, demographics, survey.title, figures / "dataset_overview")
    total = sum(counts["records"].values())
    given = any("given_split" in r for rows in splits.values() for r in rows)
    overlaps = given_split_overlaps(splits) if given else []
    dropped = counts.get("dropped_no_teacher_answer", 0)
    if config.references.mode == "import":
        source = "imported from " + ", ".join(f"`{v}`" + ("" if k == "all" else f" ({k})")
                                              for k, v in config.references.import_files().items())
        notes = {k: v for k, v in counts.items() if k.startswith(("options from", "persona field", "dropped_dup"))
                 or ": closed reference: " in k}
        imported = ["Import: " + ("; ".join(f"{k.replace('_', ' ')}: {v}" for k, v in sorted(notes.items()))
                                  or "every record as given") + ".", ""]
    else:
        source = f"`{config.personas.source}`" + (f" ({survey.title}, {survey.source})"
                                                  if config.personas.source == "survey" else "")
        imported = []
    lines = [
        f"# Dataset card: {profile}", "", profile_banner(config), "",
        f"{total} records from {len(cards)} personas (persona source: {source}, "
        f"references: `{config.references.mode}`). "
        + (given_splits_sentence(overlaps) if given else
           f"Splits are persona-disjoint: {config.splits.persona_disjoint}. ")
        + f"Teacher answers dropped as empty or unparseable: {dropped}.", "", *imported,
        f"Of these, {counts.get('training_respondent_records', 0)} training records are the real answers of "
        f"{counts.get('training_respondents', 0)} training respondents (`real_answers`: {survey.title} respondents outside "
        f"the persona panel, each with every linked item they answered, options in "
        f"{'the bank order or reversed, seeded' if config.real_answers.option_order == 'mixed' else 'the bank order'}"
        "; in the train split only, never in the held-out panel, left out of ablation runs).", "",
        "## Records by split", "", pd.DataFrame([counts["records"], counts["personas"]],
                                                 index=["records", "personas"]).to_markdown(), "",
        *overlaps_section(overlaps),
        "## Records by domain", "", by_domain.to_markdown(index=False), "",
        "## Records by question type", "", by_type.to_markdown(index=False), "",
        "## Records by reference source", "",
        f"`real_respondent`: the {survey.title} respondent's own answer; `teacher`: written by the teacher model; "
        "`imported`: taken from an existing dataset.", "", by_source.to_markdown(index=False), "",
        f"## Persona panel against the {survey.title} sample (percent)", "",
        demographics.to_markdown(index=False), "",
        "Figure: `figures/dataset_overview.png`. Provenance: `provenance/01_build_dataset.json`.", "",
    ]
    atomic_write_text(paths.results_dir(profile) / "dataset_card.md", "\n".join(lines))


def given_splits_sentence(overlaps: list[dict]) -> str:
    """The card's first paragraph on splits given by the imported files (`splits.given_split_overlaps`)."""
    if not overlaps:
        return "Splits are the imported files' own, kept as given; they share no persona and repeat no pair. "
    some = lambda n, noun: f"{n} {noun}" + ("" if n == 1 else "s")  # noqa: E731
    parts = [f"{row['where']} share {some(row['personas'], 'persona')} and "
             f"{some(row['pairs'], '(persona, question) pair')}" if "&" in row["where"]
             else f"{some(row['pairs'], 'pair')} asked more than once {row['where']}" for row in overlaps]
    return ("Splits are the imported files' own, kept as given with the overlaps they were released with: "
            + "; ".join(parts) + " (below). ")


def overlaps_section(overlaps: list[dict]) -> list[str]:
    """The card's table of what given splits share (`splits.given_split_overlaps`); nothing when they share none."""
    if not overlaps:
        return []
    table = pd.DataFrame(overlaps, columns=["where", "personas", "pairs", "records"])
    return ["## Overlaps kept as given", "",
            "The imported splits are kept where the files put them, so what they share stays: a persona in two "
            "splits, a persona asked the same question again (in another split or in the same one, under another "
            "record id). Nothing is moved or dropped: every released test record stays in the test split and can "
            "be scored by `make score`. `X & Y`: personas in both splits, (persona, question) pairs in both, and "
            "the records of both splits with those pairs; `within X`: personas asked a question more than once in "
            "X, those pairs, and their records. Held-out scores on these splits are the release's, not "
            "persona-disjoint ones.", "", table.to_markdown(index=False), ""]


def dataset_figure(counts_long: pd.DataFrame, demographics: pd.DataFrame, survey_title: str, stem: Path) -> None:
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    by_type = counts_long.pivot_table(index="domain", columns="question_type", values="records", aggfunc="sum",
                                      fill_value=0)
    by_type.loc[by_type.sum(axis=1).sort_values().index].plot.barh(stacked=True, ax=left, width=0.8)
    left.set(title="Records by domain and question type", xlabel="records", ylabel="")
    education = demographics[demographics["variable"] == "education"].set_index("category")
    education[["panel_pct", "survey_pct"]].rename(
        columns={"panel_pct": "persona panel", "survey_pct": f"{survey_title} (all respondents)"}).plot.barh(ax=right)
    right.set(title=f"Education: persona panel against {survey_title}", xlabel="percent", ylabel="")
    fig.tight_layout()
    save_figure(fig, stem)
    plt.close(fig)
