"""The learning curve (notebook 07, `make learning-curve`): how the synthetic panel improves with the number of real
respondents the model is trained on, beside the statistician's references fitted on the same respondents.

One ablation run per size in `real_answers.learning_curve`, named `respondents-<k>`: the persona subset of
`ablation_runs` plus a nested, seeded subset of k training respondents (`ablation.training_respondents`), trained
(notebook 02) and scored on the ablation panel (notebook 06). This module names the runs and collects their panel
tables into one long table (run, training respondents, variant, measure, value and interval), a figure and the
results README's section.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .. import paths
from ..panel.figures import WIDTH, dodged, key, tick_size, variant_styles, wrapped
from ..panel.references import ANCHORS
from ..provenance import atomic_write_json, provenance_record, sha256_file
from ..reporting.plots import legible_size, pyplot, save_figure, text_size
from ..reporting.readme import write_section
from ..reporting.tables import write_table

TABLE = "learning_curve"
MEASURES = {  # measure -> (panel table, value column, lower, upper); higher is better except log-loss
    "log_loss": ("panel_individual", "log_loss", "log_loss_lo", "log_loss_hi"),
    "accuracy": ("panel_individual", "accuracy", "accuracy_lo", "accuracy_hi"),
    "subgroup_effect_correlation": ("panel_effects", "correlation", "correlation_lo", "correlation_hi"),
    "subgroup_effect_slope": ("panel_effects", "slope", "slope_lo", "slope_hi"),
}


def run_name(size: int) -> str:
    return f"respondents-{size}"


def learning_curve_runs(config) -> dict[str, dict]:
    """Run name -> overrides, one run per size of the profile's curve."""
    return {run_name(k): {"ablation.training_respondents": k} for k in config.real_answers.learning_curve}


def collect(config) -> pd.DataFrame:
    """Every run's panel measures, long: run, training_respondents, variant, measure, value, low, high. A run
    without panel tables raises FileNotFoundError naming it (run `make learning-curve`)."""
    rows = []
    for name, overrides in learning_curve_runs(config).items():
        folder = paths.RunPaths(config.profile, name, "test").tables
        tables = {}
        for table in {table for table, *_ in MEASURES.values()}:
            path = folder / f"{table}.csv"
            if not path.exists():
                raise FileNotFoundError(f"{path}: learning-curve run '{name}' has no panel tables; "
                                        f"run make learning-curve PROFILE={config.profile}")
            tables[table] = pd.read_csv(path).to_dict("records")
        for measure, (table, value, low, high) in MEASURES.items():
            for row in tables[table]:
                rows.append({"run": name, "training_respondents": overrides["ablation.training_respondents"],
                             "variant": row["variant"], "measure": measure, "value": row[value],
                             "low": row[low], "high": row[high]})
    return pd.DataFrame(rows, columns=["run", "training_respondents", "variant", "measure", "value", "low", "high"])


def anchor_values(config) -> dict[str, dict[str, float]]:
    """measure -> {anchor variant: value} from the main run's panel tables (the anchors are fitted there only)."""
    folder, out = config.paths().tables, {}
    for measure, (table, value, *_) in MEASURES.items():
        path = folder / f"{table}.csv"
        if path.exists():
            rows = pd.read_csv(path)
            out[measure] = {r.variant: r[value] for _, r in rows.iterrows() if r.variant in ANCHORS}
    return out


def curve_figure(curve: pd.DataFrame, stem, title: str, anchors: dict[str, dict[str, float]] | None = None) -> None:
    """`draw_curve` saved as PNG and PDF at `stem`."""
    plt = pyplot()
    fig = draw_curve(curve, title, anchors)
    save_figure(fig, stem)
    plt.close(fig)


ANCHOR_STYLES = ("--", ":")  # the main run's anchors, one line style each


def draw_curve(curve: pd.DataFrame, title: str, anchors: dict[str, dict[str, float]] | None = None):
    """One panel per measure (two a row, to be read at page width) against training respondents (symmetric log
    scale: 0 stays on the axis), each variant its own colour and marker, set slightly apart along the axis so that
    no interval hides another; the main run's anchors as horizontal lines named in the legend, below the panels."""
    plt = pyplot()
    measures = list(MEASURES)
    variants = list(dict.fromkeys(curve.variant))
    styles = variant_styles(plt, variants)
    names = sorted({name for values in (anchors or {}).values() for name in values})
    size = legible_size(WIDTH)
    with text_size(plt, size):
        rows = -(-len(measures) // 2)
        fig, axes = plt.subplots(rows, 2, figsize=(WIDTH, 2.9 * rows + 1.2), squeeze=False, layout="constrained")
        for ax in axes.flat[len(measures):]:
            ax.set_visible(False)
        spread = dict(zip(variants, 1 + dodged(len(variants), 0.18)))  # multiplicative: the axis is logarithmic
        for ax, measure in zip(axes.flat, measures):
            part = curve[curve.measure == measure]
            for variant, line in part.groupby("variant", sort=False):
                line = line.sort_values("training_respondents")
                keep = np.isfinite(line.value.to_numpy(float))
                line = line[keep]
                if line.empty:
                    continue
                n = line.training_respondents.to_numpy(float)  # 0 sits in the linear part: a shift, not a factor
                x = np.where(n > 0, n * spread[variant], (spread[variant] - 1) * 12)
                ax.errorbar(x, line.value, yerr=[line.value - line.low, line.high - line.value], capsize=2,
                            linewidth=1, markersize=5, **styles[variant])
            for name, style in zip(names, ANCHOR_STYLES * len(names)):
                value = (anchors or {}).get(measure, {}).get(name)
                if value is not None and np.isfinite(value):
                    ax.axhline(value, linestyle=style, linewidth=1, color="0.35")
            ax.set_xscale("symlog", linthresh=10)
            ax.set_xlim(-3, 1.6 * max(curve.training_respondents.max(), 10))
            ax.set_xlabel("training respondents")
            ax.set_title(measure.replace("_", " ") + (" (lower is better)" if measure == "log_loss" else ""))
        handles = [key(plt, v, styles[v]["color"], styles[v]["marker"], linestyle="-") for v in variants]
        handles += [key(plt, f"{name} (main run, every respondent outside the panel)", "0.35", "",
                        linestyle=style) for name, style in zip(names, ANCHOR_STYLES * len(names))]
        fig.legend(handles=handles, loc="outside lower center", ncol=2)
        fig.suptitle(wrapped(title, WIDTH, size + 1))
        tick_size(fig, size)
    return fig


def curve_section(curve: pd.DataFrame, config, minutes: dict[str, float]) -> str:
    """The results README's section: the curve as a table, in words, with what it cost."""
    wide = curve.pivot_table(index=["training_respondents", "variant"], columns="measure", values="value",
                             sort=False).reset_index()
    lines = ["## Learning curve: real respondents in training (notebook 07)", "",
             f"Runs `{'`, `'.join(learning_curve_runs(config))}`: the ablation persona subset "
             f"({config.ablation_runs.train_personas} personas) plus k training respondents' real answers, each "
             f"scored on the ablation panel ({config.panel.ablation_respondents} held-out respondents); the "
             "references are fitted on the same respondents the model trained on. Table: `tables/learning_curve.*`; "
             "figure: `figures/learning_curve.png`. Intervals: respondent bootstrap (in the table).", "",
             wide.to_markdown(index=False, floatfmt=".3f"), ""]
    if minutes:
        lines += ["Minutes per run (training and panel notebooks, as recorded by papermill): "
                  + ", ".join(f"`{k}` {v:.1f}" for k, v in minutes.items()) + ".", ""]
    return "\n".join(lines)


def run_minutes(config) -> dict[str, float]:
    """Minutes each run's notebooks took (papermill's recorded durations of 02 and 06)."""
    import json

    out = {}
    for name in learning_curve_runs(config):
        executed = paths.RunPaths(config.profile, name).executed
        durations = [json.loads(nb.read_text(encoding="utf-8"))["metadata"].get("papermill", {}).get("duration")
                     for nb in sorted(executed.glob("*.ipynb"))]
        if durations and all(d is not None for d in durations):
            out[name] = sum(durations) / 60
    return out


def run_learning_curve(config) -> pd.DataFrame:
    """Notebook 07: the long table, the figure and the results README section of the profile's curve."""
    where = config.paths()
    curve = collect(config)
    write_table(curve, where.tables / TABLE, caption=f"learning curve: the panel against training respondents "
                                                     f"({config.profile})")
    curve_figure(curve, where.figures / TABLE, f"Learning curve ({config.profile})", anchor_values(config))
    write_section(where.results, "learning_curve", curve_section(curve, config, run_minutes(config)))
    atomic_write_json(where.results / "provenance" / "07_learning_curve.json", provenance_record(
        config.to_dict(), config.to_dict()["seeds"], {"learning_curve": sha256_file(where.tables / f"{TABLE}.csv")},
        step="07_learning_curve", runs=list(learning_curve_runs(config))))
    return curve
