"""Tables, figures and cards written under results/<profile>/ (CSV + Markdown tables, PNG + PDF figures)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from . import paths
from .provenance import atomic_write_text

DEMOGRAPHICS = ("age_band", "gender", "education", "party", "occupation")


def age_band(age: int) -> str:
    if not age:
        return "not stated"
    return "18-29" if age < 30 else "30-44" if age < 45 else "45-64" if age < 65 else "65+"


def demographic_frame(cards: list[dict]) -> pd.DataFrame:
    """One row per persona card with the comparison variables (party = political identity before the comma)."""
    return pd.DataFrame({
        "age_band": [age_band(c["age"]) for c in cards],
        "gender": [c["gender"] for c in cards],
        "education": [c["education"] for c in cards],
        "party": [c["political_identity"].split(",")[0] for c in cards],
        "occupation": [c["occupation"] for c in cards],
    })


def demographics_comparison(panel_cards: list[dict]) -> pd.DataFrame:
    """Share of each category in the persona panel against all GSS 2018 respondents (percent)."""
    from .personas import all_gss_cards

    panel, gss = demographic_frame(panel_cards), demographic_frame(all_gss_cards())
    rows = []
    for variable in DEMOGRAPHICS:
        p = panel[variable].value_counts(normalize=True) * 100
        g = gss[variable].value_counts(normalize=True) * 100
        for category in sorted(set(p.index) | set(g.index)):
            rows.append({"variable": variable, "category": category,
                         "panel_pct": round(float(p.get(category, 0.0)), 1),
                         "gss2018_pct": round(float(g.get(category, 0.0)), 1)})
    return pd.DataFrame(rows)


def write_table(table: pd.DataFrame, stem: Path, caption: str = "", float_format: str = "%.4f") -> None:
    """CSV (exact), Markdown (reading) and LaTeX (papers) side by side."""
    digits = float_format.strip("%f").lstrip(".")
    atomic_write_text(stem.with_suffix(".csv"), table.to_csv(index=False, float_format=float_format))
    atomic_write_text(stem.with_suffix(".md"), table.to_markdown(index=False, floatfmt=f".{digits}f") + "\n")
    atomic_write_text(stem.with_suffix(".tex"), table.to_latex(index=False, float_format=float_format,
                                                               caption=caption or None, label=f"tab:{stem.name}"))


def profile_banner(config) -> str:
    if config.profile == "paper":
        return "Profile `paper`: the paper's settings (hub models, full scale)."
    return (f"Profile `{config.profile}`: embedded-default scale on CPU. These are NOT the paper's numbers; "
            "they show the pipeline on a small, locally available model and data.")


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
    demographics = demographics_comparison(cards)
    write_table(demographics, tables / "persona_demographics_vs_gss",
                "persona panel against all GSS 2018 respondents (percent)", float_format="%.1f")
    _dataset_figure(counts_long, demographics, figures / "dataset_overview")
    total = sum(counts["records"].values())
    dropped = counts.get("dropped_no_teacher_answer", 0)
    lines = [
        f"# Dataset card: {profile}", "", profile_banner(config), "",
        f"{total} records from {len(cards)} personas (persona source: `{config.personas.source}`, "
        f"references: `{config.references.mode}`). Splits are persona-disjoint: "
        f"{config.splits.persona_disjoint}. Teacher answers dropped as empty or unparseable: {dropped}.", "",
        "## Records by split", "", pd.DataFrame([counts["records"], counts["personas"]],
                                                 index=["records", "personas"]).to_markdown(), "",
        "## Records by domain", "", by_domain.to_markdown(index=False), "",
        "## Records by question type", "", by_type.to_markdown(index=False), "",
        "## Records by reference source", "",
        "`real_respondent`: the GSS 2018 respondent's own answer; `teacher`: written by the teacher model; "
        "`imported`: taken from an existing dataset.", "", by_source.to_markdown(index=False), "",
        "## Persona panel against the GSS 2018 sample (percent)", "",
        demographics.to_markdown(index=False), "",
        "Figure: `figures/dataset_overview.png`. Provenance: `provenance/01_build_dataset.json`.", "",
    ]
    atomic_write_text(paths.results_dir(profile) / "dataset_card.md", "\n".join(lines))


def save_figure(fig, stem: Path) -> None:
    stem.parent.mkdir(parents=True, exist_ok=True)
    for suffix in (".png", ".pdf"):
        tmp = stem.with_name(f".{stem.name}.tmp{suffix}")
        fig.savefig(tmp, dpi=150, bbox_inches="tight", metadata={"CreationDate": None} if suffix == ".pdf" else {})
        tmp.replace(stem.with_suffix(suffix))


def _dataset_figure(counts_long: pd.DataFrame, demographics: pd.DataFrame, stem: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    by_type = counts_long.pivot_table(index="domain", columns="question_type", values="records", aggfunc="sum",
                                      fill_value=0)
    by_type.loc[by_type.sum(axis=1).sort_values().index].plot.barh(stacked=True, ax=left, width=0.8)
    left.set(title="Records by domain and question type", xlabel="records", ylabel="")
    education = demographics[demographics["variable"] == "education"].set_index("category")
    education[["panel_pct", "gss2018_pct"]].rename(
        columns={"panel_pct": "persona panel", "gss2018_pct": "GSS 2018 (all respondents)"}).plot.barh(ax=right)
    right.set(title="Education: persona panel against GSS 2018", xlabel="percent", ylabel="")
    fig.tight_layout()
    save_figure(fig, stem)
    plt.close(fig)
