"""Ablation runs (notebook 05): each is the study's notebooks 02-04 rerun with a few parameters changed.

A run named NAME writes under `artifacts/<profile>/runs/NAME/` and `results/<profile>/runs/NAME/`; the data are the
profile's own. Rank runs keep alpha = 2 r, the paper's ratio, so the LoRA scaling alpha / r stays the same.

    make ablation NAME=rank32 LORA_R=32          # one run, from the shell
    make ablations                               # the standard set below
"""
from __future__ import annotations

import json
import sys

import pandas as pd

from . import paths

STANDARD_ABLATIONS: dict[str, dict] = {
    "rank8": {"lora.r": 8, "lora.alpha": 16},
    "rank32": {"lora.r": 32, "lora.alpha": 64},
    "rank64": {"lora.r": 64, "lora.alpha": 128},
    "heldout-healthcare": {"ablation.heldout_domain": "healthcare"},
    "no-persona": {"ablation.include_persona": False},
    "lora-16bit": {"training.quantization": "none", "training.compute_dtype": "float32"},
}
KNOBS = {  # make variables -> parameter keys (`make ablation NAME=... LORA_R=32 HELDOUT=finance ...`)
    "LORA_R": "lora.r", "HELDOUT": "ablation.heldout_domain", "NO_PERSONA": "ablation.include_persona",
    "QUANT": "training.quantization", "EPOCHS": "training.epochs",
}


def overrides_for(name: str, knobs: dict[str, str]) -> dict:
    """A standard run's overrides, or the ones the make variables ask for (LORA_R also sets alpha = 2 r)."""
    given = {k: v for k, v in knobs.items() if v}
    if not given:
        if name not in STANDARD_ABLATIONS:
            raise SystemExit(f"ablation '{name}' is not standard ({sorted(STANDARD_ABLATIONS)}); "
                             f"give parameters, e.g. LORA_R=32, HELDOUT=finance, NO_PERSONA=1, QUANT=none")
        return STANDARD_ABLATIONS[name]
    out = {}
    for knob, value in given.items():
        if knob not in KNOBS:
            raise SystemExit(f"unknown ablation knob {knob}; known: {sorted(KNOBS)}")
        if knob == "LORA_R":
            out.update({"lora.r": int(value), "lora.alpha": 2 * int(value)})
        elif knob == "NO_PERSONA":
            out["ablation.include_persona"] = value.lower() not in ("1", "true", "yes")
        elif knob == "EPOCHS":
            out["training.epochs"] = float(value)
        elif knob == "QUANT":
            out.update({"training.quantization": value} | ({"training.compute_dtype": "float32"}
                                                              if value == "none" else {}))
        else:
            out[KNOBS[knob]] = value
    return out


def run_summary(profile: str, run: str, overrides: dict) -> list[dict]:
    """One row per model variant of a finished run: its headline metrics and training cost."""
    folder = paths.results_dir(f"{profile}/runs/{run}") if run else paths.results_dir(profile)
    table = pd.read_csv(folder / "tables" / "model_comparison.csv")
    training = json.loads((folder / "training_metrics.json").read_text()) if (
        folder / "training_metrics.json").exists() else {}
    rows = []
    for _, row in table.iterrows():
        model = row.variant.rsplit("-", 1)[0]
        cost = training.get(model, {}) if row.variant.endswith("-lora") else {}
        rows.append({"run": run or "main", "overrides": json.dumps(overrides, sort_keys=True), **row.to_dict(),
                     "trainable_parameters": cost.get("trainable_parameters"),
                     "train_wall_s": cost.get("wall_time_s_this_session"),
                     "peak_process_memory_gib": cost.get("peak_process_memory_gib")})
    return rows


def collect(profile: str) -> pd.DataFrame:
    """The main run and every finished ablation run of the profile in one table."""
    rows = run_summary(profile, "", {})
    runs_root = paths.results_dir(profile) / "runs"
    for folder in sorted(runs_root.glob("*/")) if runs_root.exists() else []:
        if (folder / "tables" / "model_comparison.csv").exists():
            overrides = json.loads((folder / "overrides.json").read_text()) if (folder / "overrides.json").exists() else {}
            rows += run_summary(profile, folder.name, overrides)
    return pd.DataFrame(rows)


if __name__ == "__main__":  # python -m polypersona_utils.ablations overrides NAME KNOB=VALUE ...
    name = sys.argv[2]
    knobs = dict(arg.split("=", 1) for arg in sys.argv[3:])
    print(json.dumps(overrides_for(name, knobs), sort_keys=True))


def ablation_report(profile: str) -> pd.DataFrame:
    """Notebook 05: the ablation table (CSV, Markdown, LaTeX), its figures and `results/<profile>/ablations.md`."""
    from .evaluation import MIN_PERSONAS_FOR_INTERVALS
    from .reporting import write_table
    from .provenance import atomic_write_text

    table = collect(profile)
    lora = table[table.variant.str.endswith("-lora")].reset_index(drop=True)
    write_table(table, paths.tables_dir(profile) / "ablations", caption=f"ablations ({profile} profile)")
    ablation_figures(profile, lora)
    main = paths.results_dir(profile)
    domain = pd.read_csv(main / "tables" / "domain_metrics.csv")

    def fmt(row, metric):
        return f"{row[metric]:.3f} [{row[f'{metric}_low']:.3f}, {row[f'{metric}_high']:.3f}]"

    lines = [f"# Ablations: {profile} profile", "",
             "Each run is notebooks 02-04 rerun with the parameters shown; values are the fine-tuned variant's mean "
             "and 95 % persona-bootstrap interval on that run's test records.", "",
             lora[["run", "overrides", "n", "personas", "bleu_nltk", "rouge1", "bertscore_f1", "trainable_parameters",
                   "train_wall_s", "peak_process_memory_gib"]].to_markdown(index=False, floatfmt=".3f"), ""]
    for _, row in lora.iterrows():
        caveat = (f" Only {int(row.personas)} test personas: too few to say anything." if row.personas <
                  MIN_PERSONAS_FOR_INTERVALS else "")
        lines.append(f"- `{row.run}`: BLEU {fmt(row, 'bleu_nltk')}, ROUGE-1 {fmt(row, 'rouge1')}, BERTScore "
                     f"{fmt(row, 'bertscore_f1')}.{caveat}")
    heldout = lora[lora.overrides.str.contains("heldout_domain")]
    for _, row in heldout.iterrows():
        held = json.loads(row.overrides)["ablation.heldout_domain"]
        inside = domain[(domain.variant == row.variant) & (domain.domain == held)]
        if not inside.empty:
            lines.append(f"- Held-out `{held}`: ROUGE-1 {row.rouge1:.3f} when the domain was not trained on, "
                         f"{inside.rouge1.item():.3f} on the same test records in the main run, which trained on "
                         "it (in-domain); compare the gap with the held-out interval.")
    lines += ["", "Overlapping intervals mean the embedded scale cannot separate the settings; the paper profile "
              "(`make ablations PROFILE=paper`) is where the differences can show.", ""]
    atomic_write_text(paths.results_dir(profile) / "ablations.md", "\n".join(lines))
    return table


def ablation_figures(profile: str, lora: pd.DataFrame) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .reporting import save_figure

    rank_of = lambda o: json.loads(o).get("lora.r", 16)  # noqa: E731 (the main run uses the profile's r)
    ranked = lora[lora.overrides.apply(lambda o: set(json.loads(o)) <= {"lora.r", "lora.alpha"})].copy()
    ranked["rank"] = ranked.overrides.apply(rank_of)
    ranked = ranked.sort_values("rank")
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.5))
    for ax, metric in zip(axes, ("bleu_nltk", "rouge1", "bertscore_f1")):
        err = [ranked[metric] - ranked[f"{metric}_low"], ranked[f"{metric}_high"] - ranked[metric]]
        ax.errorbar(ranked["rank"], ranked[metric], yerr=err, fmt="o-", capsize=3)
        ax.set(xscale="log", xlabel="LoRA rank r (alpha = 2 r)", title=metric)
        ax.set_xticks(ranked["rank"].tolist(), [str(r) for r in ranked["rank"]])
    fig.suptitle(f"Metric against LoRA rank, 95 % intervals ({profile} profile)")
    fig.tight_layout()
    save_figure(fig, paths.figures_dir(profile) / "ablation_rank")
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(7, 3.5))
    err = [lora.rouge1 - lora.rouge1_low, lora.rouge1_high - lora.rouge1]
    ax.barh(lora.run, lora.rouge1, xerr=err, capsize=3)
    ax.set(xlabel="ROUGE-1 of the fine-tuned variant", title="Ablation runs (95 % intervals)")
    fig.tight_layout()
    save_figure(fig, paths.figures_dir(profile) / "ablation_runs")
    plt.close(fig)
