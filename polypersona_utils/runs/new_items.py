"""New questions (notebook 08, `make new-items`): the panel on linked items it was never trained on.

The profile's linked items are split into `new_items.folds` groups (`fold_items`: one seeded order, cut in turn);
each point of `new_items.points` (`config_runs.CurvePoint`) runs once per fold, named
`newitems-<point>-fold<i>` (`curve-` dropped from the point's name): trained on its survey respondents' answers to
the other items only (`ablation.heldout_items`) and scored on the whole panel's answers to the held-out ones, beside
the item-blind references (`panel.new_items`). Each fold run is its own folder under `results/<profile>/runs/`,
committed once scored; `make new-items` runs only the ones with no result made with their present settings on the
present panel (`learning_curve.missing_points`). This module collects the held-out pairs of every fold scored so far
into `results/<profile>/new_items_distributions.csv` (per point) and writes `tables/panel_new_items.*`, its worth
table, a figure and the results README's section.
"""
from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pandas as pd

from .. import paths
from ..dataset.respondents import linked_questions
from ..panel.figures import WIDTH, key, off_scale, tick_size, variant_styles, wrapped
from ..panel.new_items import COMPARED, new_items_tables
from ..panel.readme import bracket, new_items_sentence
from ..panel.report import (DISTRIBUTIONS_FILE, distributions_csv, population_frame, read_distributions,
                            rewrite_verdict)
from ..panel.synthetic import subgroup_variables
from ..provenance import atomic_write_json, atomic_write_text, provenance_record, sha256_file
from ..reporting.checks import TableCheck, check_tables, read_stored
from ..reporting.plots import legible_size, pyplot, save_figure, text_size
from ..reporting.readme import write_section
from ..reporting.tables import write_table
from ..study import StudyRun
from .learning_curve import point_name, point_overrides

TABLES = ("panel_new_items", "panel_new_items_worth")
DISTRIBUTIONS = "new_items_distributions.csv"


def fold_items(config) -> list[list[str]]:
    """The linked items (question ids) of each fold: one order drawn with the split seed, cut into
    `new_items.folds` groups of sizes differing by at most one (a bank with fewer linked items than folds holds
    each item out alone)."""
    items = [q.question_id for q in linked_questions(config.bank)]
    order = np.random.default_rng([config.seeds.split, 6]).permutation(len(items))
    folds = min(config.new_items.folds, len(items))
    return [sorted(items[i] for i in part) for part in np.array_split(order, folds)]


def fold_name(point, config, fold: int) -> str:
    return point_name(point, config).replace("curve-", "newitems-", 1) + f"-fold{fold + 1}"


def point_folds(config) -> dict[str, dict[str, dict]]:
    """Point name -> {fold run name -> overrides}, in the profile's order."""
    folds = fold_items(config)
    return {point_name(p, config).replace("curve-", "newitems-", 1): {
        fold_name(p, config, i): point_overrides(p, config) | {"ablation.heldout_items": items}
        for i, items in enumerate(folds)} for p in config.new_items.points}


def new_items_runs(config) -> dict[str, dict]:
    """Every fold run: name -> overrides."""
    return {name: overrides for runs in point_folds(config).values() for name, overrides in runs.items()}


def scored_folds(config) -> tuple[list[tuple[str, str]], list[str]]:
    """([(point, fold run)] of the fold runs with panel results, [fold runs without]), in the profile's order: the
    folds are committed one by one, and the tables read the ones scored so far."""
    scored, missing = [], []
    for point, runs in point_folds(config).items():
        for name in runs:
            if (paths.RunPaths(config.profile, name).results / DISTRIBUTIONS_FILE).exists():
                scored.append((point, name))
            else:
                missing.append(name)
    return scored, missing


def collect_distributions(config) -> pd.DataFrame:
    """The scored fold runs' stored distributions (`scored_folds`), held-out pairs only, together, with `point` and
    `fold` columns. No fold scored yet: FileNotFoundError (run `make new-items`)."""
    scored, _ = scored_folds(config)
    if not scored:
        raise FileNotFoundError(f"no new-items fold of {config.profile} has panel results yet; run make new-items "
                                f"PROFILE={config.profile}")
    return pd.concat([read_distributions(paths.RunPaths(config.profile, name).results / DISTRIBUTIONS_FILE).assign(
        point=point, fold=name) for point, name in scored], ignore_index=True)


def point_tables(run: StudyRun, frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """`panel.new_items.new_items_tables` per point, stacked with a `point` column."""
    from ..panel.measures import with_answer_columns

    config = run.config
    variables = subgroup_variables(config.survey)
    population = with_answer_columns(population_frame(run))
    out: dict[str, list] = {name: [] for name in TABLES}
    for point, part in frame.groupby("point", sort=False):
        tables = new_items_tables(with_answer_columns(part.drop(columns=["point"])), population,
                                  config.metrics.bootstrap_samples, config.seeds.bootstrap,
                                  config.panel.min_cell_respondents, variables, config.panel.worth,
                                  config.seeds.worth)
        for name, table in tables.items():
            out[name].append(table.assign(point=point)[["point", *table.columns]])
    return {name: pd.concat(tables, ignore_index=True) for name, tables in out.items()}


def draw_new_items(table: pd.DataFrame, title: str):
    """Per point, every variant's log-loss and subgroup-effect slope on the held-out items, with intervals, best
    log-loss first; item-blind references and ceilings marked by kind. A log-loss far beyond the others
    (`panel.figures.off_scale` around the rows' median: a zero-shot model's) is an arrow at the axis' edge
    with its value written, so that the rows that matter can be told apart."""
    plt = pyplot()
    size = legible_size(WIDTH)
    kinds = list(dict.fromkeys(table.kind))
    styles = variant_styles(plt, kinds)
    with text_size(plt, size):
        points = list(dict.fromkeys(table.point))
        rows = sum(len(table[table.point == p]) for p in points)
        fig, axes = plt.subplots(1, 2, figsize=(WIDTH, 1.2 + 0.32 * rows), squeeze=False, layout="constrained")
        labels = [f"{v}" if len(points) == 1 else f"{p}: {v}" for p, v in zip(table.point, table.variant)]
        y = np.arange(len(table))[::-1]
        arrows = False
        for ax, (measure, low, high, name) in zip(axes.flat, (
                ("log_loss", "log_loss_lo", "log_loss_hi", "log-loss (lower is better)"),
                ("subgroup_effect_slope", "subgroup_effect_slope_lo", "subgroup_effect_slope_hi",
                 "subgroup-effect slope (1 matches)"))):
            middle = float(table[measure].median())
            limit = (off_scale(table[low].to_numpy(float) - middle, table[high].to_numpy(float) - middle)
                     if measure == "log_loss" else float("inf"))  # slopes are bounded: every one drawn
            arrows = arrows or np.isfinite(limit)
            for yi, (_, row) in zip(y, table.iterrows()):
                if not np.isfinite(row[measure]):
                    continue
                side = np.sign(row[measure] - middle)
                if row[low] - middle > limit or row[high] - middle < -limit:  # an arrow at the axis' edge
                    edge = middle + side * 1.15 * limit
                    ax.plot(edge, yi, marker=">" if side > 0 else "<", linestyle="none", markersize=6,
                            color=styles[row.kind]["color"])
                    ax.annotate(f"{row[measure]:.2f}", (edge, yi), xytext=(-9 * side, 0), textcoords="offset points",
                                ha="right" if side > 0 else "left", va="center")
                    continue
                ax.errorbar(row[measure], yi, xerr=[[row[measure] - row[low]], [row[high] - row[measure]]],
                            capsize=2, linewidth=1, markersize=5, linestyle="none", **styles[row.kind])
            if np.isfinite(limit):
                ax.set_xlim(middle - 1.25 * limit if (table[high] - middle < -limit).any() else None,
                            middle + 1.25 * limit if (table[low] - middle > limit).any() else None)
            ax.set_yticks(y, labels if ax is axes.flat[0] else [""] * len(y))
            ax.set_title(name)
            ax.grid(axis="x", linewidth=0.3)
        fig.legend(handles=[key(plt, kind, styles[kind]["color"], styles[kind]["marker"]) for kind in kinds],
                   loc="outside lower center", ncol=1)
        fig.suptitle(wrapped(title + ("; arrows: beyond the axis, value written" if arrows else ""), WIDTH, size + 1))
        tick_size(fig, size)
    return fig


def new_items_section(tables: dict[str, pd.DataFrame], config) -> str:
    """The results README's section: per point, whether the fine-tuned panel beats the item-blind references on the
    held-out items, with the paired intervals, then the table."""
    table = tables["panel_new_items"]
    folds = fold_items(config)
    scored, missing = scored_folds(config)
    lines = ["## New questions: items held out of training (notebook 08)", ""]
    if missing:
        lines += [f"**{len(scored)} of {len(scored) + len(missing)} fold runs scored so far**: the numbers below are "
                  "on their held-out items only. Not scored yet (`make new-items` runs them, each committed when "
                  "scored): " + ", ".join(f"`{name}`" for name in missing) + ".", ""]
    for point, part in table.groupby("point", sort=False):
        sentence = new_items_sentence(part, sum(1 for p, _ in scored if p == point), len(folds), pointer="")
        lines += [sentence, ""] if sentence else []
    shown = table[["point", "variant", "kind", "pairs"]].copy()
    for name, label in (("log_loss", "log-loss"), ("accuracy", "accuracy"),
                        ("subgroup_effect_correlation", "subgroup-effect correlation"),
                        ("subgroup_effect_slope", "subgroup-effect slope")):
        shown[label] = [bracket(r, name) for _, r in table.iterrows()]
    for reference in COMPARED:
        shown[f"minus {reference}"] = [bracket(r, f"log_loss_minus_{reference}", signed=True)
                                       for _, r in table.iterrows()]
    lines += ["Folds (held-out items): " + "; ".join(", ".join(f"`{q}`" for q in f) for f in folds) + ". The "
              "item-blind references see only the other items' answers; the ceilings are fitted on the held-out "
              "item's own answers by the same respondents. Intervals: respondent bootstrap (log-loss, accuracy), "
              "BCa (effects, paired differences). Tables: `tables/panel_new_items.*` and "
              "`tables/panel_new_items_worth.*`; figure: `figures/panel_new_items.png`.", "",
              shown.to_markdown(index=False), "", "![The panel on new questions](figures/panel_new_items.png)", ""]
    return "\n".join(lines)


def run_new_items(config) -> dict[str, pd.DataFrame]:
    """Notebook 08: the folds' held-out pairs together, the tables, the figure and the README section."""
    where = config.paths()
    frame = collect_distributions(config)
    variables = subgroup_variables(config.survey)
    stored = frame.drop(columns=["fold"])
    atomic_write_text(where.results / DISTRIBUTIONS, distributions_csv(stored, ("point", *variables)))
    tables = point_tables(StudyRun(config), read_distributions(where.results / DISTRIBUTIONS))
    for name, table in tables.items():
        write_table(table, where.tables / name, caption=f"{name.replace('_', ' ')} ({config.profile})")
    # the figure and the words read the tables as stored, as the verdict does: a number is rounded once
    tables = {name: read_stored(where.tables / f"{name}.csv") for name in tables}
    plt = pyplot()
    fig = draw_new_items(tables["panel_new_items"], f"New questions: items held out of training ({config.profile})")
    save_figure(fig, where.figures / "panel_new_items")
    plt.close(fig)
    write_section(where.results, "new_items", new_items_section(tables, config))
    atomic_write_json(where.results / "provenance" / "08_new_items.json", provenance_record(
        config.to_dict(), config.to_dict()["seeds"], {"distributions": sha256_file(where.results / DISTRIBUTIONS)},
        step="08_new_items", runs=[name for _, name in scored_folds(config)[0]],
        not_scored=scored_folds(config)[1], folds=fold_items(config),
        new_items=asdict(config.new_items)))
    rewrite_verdict(config)  # the verdict's sentence on new questions
    return tables


def check_new_items(config) -> list[TableCheck]:
    """The new-items tables recomputed from the stored distributions and compared within the declared tolerances;
    none when the profile stored none."""
    where = config.paths()
    path = where.results / DISTRIBUTIONS
    if not path.exists():
        return []
    return check_tables(point_tables(StudyRun(config), read_distributions(path)), where.tables)
