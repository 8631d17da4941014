"""The learning curve's figure (notebook 07): log-loss and subgroup-effect slope against the number of real
respondents trained on, one line per recipe and reference, the main run's anchors as horizontal lines."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..panel.figures import WIDTH, dodged, key, off_scale, tick_size, variant_styles, wrapped
from ..reporting.plots import legible_size, pyplot, save_figure, text_size


FIGURE_MEASURES = ("log_loss", "subgroup_effect_slope")


def curve_series(curve: pd.DataFrame) -> pd.DataFrame:
    """The curve's lines: each fine-tuned point under its recipe (`smollm2-135m sft top8 fp32`, then its levers if
    any: `... fp32 e3`), each zero-shot model under its base at 0 respondents, each reference fitted at each size once
    (points of one size share them)."""
    frame = curve[curve.measure.isin(FIGURE_MEASURES)].copy()
    recipe = (frame.model + " " + frame.objective.str.replace("option_likelihood", "options")
              + frame.top_layers.map(lambda k: "" if k == "all" else f" top{k}") + " " + frame.base
              + frame.levers.fillna("").map(lambda levers: f" {levers}" if levers else ""))
    lora, zero = frame.variant.str.endswith("-lora"), frame.variant.str.endswith("-zeroshot")
    frame["series"] = np.where(lora, recipe, np.where(zero, frame.variant + " " + frame.base, frame.variant))
    frame.loc[zero, "training_respondents"] = 0
    return frame.drop_duplicates(["series", "training_respondents", "measure"])


def curve_figure(curve: pd.DataFrame, stem, title: str, anchors: dict[str, dict[str, float]] | None = None) -> None:
    """`draw_curve` saved as PNG and PDF at `stem`."""
    plt = pyplot()
    fig = draw_curve(curve, title, anchors)
    save_figure(fig, stem)
    plt.close(fig)


ANCHOR_STYLES = ("--", ":")  # the main run's anchors, one line style each


def draw_curve(curve: pd.DataFrame, title: str, anchors: dict[str, dict[str, float]] | None = None):
    """Log-loss and subgroup-effect slope against training respondents (symmetric log scale: 0, the zero-shot
    models, stays on the axis), side by side to be read at page width; each line (`curve_series`) its own colour and
    marker, set slightly apart along the axis so that no interval hides another; a point far beyond the others
    (`panel.figures.off_scale` around the panel's median: a zero-shot model's log-loss; slopes are all drawn) an arrow
    at the axis' edge with its value written (`nearby` arrows' values in one label), so that the points that matter
    can be told apart; the main run's anchors (fitted on every respondent outside the panel) as horizontal lines
    named in the legend, below the panels."""
    plt = pyplot()
    series = curve_series(curve)
    lines = list(dict.fromkeys(series.series))
    styles = variant_styles(plt, lines)
    names = sorted({name for values in (anchors or {}).values() for name in values})
    size = legible_size(WIDTH)
    largest = max(float(series.training_respondents.max()), 10.0)
    with text_size(plt, size):
        fig, axes = plt.subplots(1, 2, figsize=(WIDTH, 4.6), squeeze=False, layout="constrained")
        spread = dict(zip(lines, 1 + dodged(len(lines), 0.18)))  # multiplicative: the axis is logarithmic
        arrows = False
        for ax, measure in zip(axes.flat, FIGURE_MEASURES):
            ax.set_xscale("symlog", linthresh=10)
            ax.set_xlim(-3, 1.6 * largest)
            written = []  # (x in points, x, edge, value) of each arrow
            part = series[series.measure == measure]
            part = part[np.isfinite(part.value.to_numpy(float))]
            middle = float(part.value.median()) if len(part) else 0.0
            limit = (off_scale(part.low.to_numpy(float) - middle, part.high.to_numpy(float) - middle)
                     if measure == "log_loss" else np.inf)  # slopes share one scale, the real one's near 1
            arrows = arrows or np.isfinite(limit)
            for name, line in part.groupby("series", sort=False):
                line = line.sort_values("training_respondents")
                n = line.training_respondents.to_numpy(float)  # 0 sits in the linear part: a shift, not a factor
                x = np.where(n > 0, n * spread[name], (spread[name] - 1) * 12)
                value, low, high = (line[c].to_numpy(float) - middle for c in ("value", "low", "high"))
                far = (low > limit) | (high < -limit)
                ax.errorbar(x[~far], line.value[~far], yerr=[value[~far] - low[~far], high[~far] - value[~far]],
                            capsize=2, linewidth=1, markersize=5, **styles[name])
                for i in np.flatnonzero(far):  # an arrow at the axis' edge, its value written beside it
                    side = np.sign(value[i])
                    edge = middle + side * 1.15 * limit
                    ax.plot(x[i], edge, marker="^" if side > 0 else "v", linestyle="none", markersize=6,
                            color=styles[name]["color"])
                    written.append((ax.transData.transform((x[i], edge))[0] * 72 / fig.dpi, x[i], edge,
                                    line.value.iloc[i]))
            for group in nearby(written, 4 * size):  # arrows side by side: their values in one label, left to right
                ax.annotate(", ".join(f"{v:.2f}" for *_, v in group), group[-1][1:3], xytext=(6, 0),
                            textcoords="offset points", ha="left", va="center")
            if np.isfinite(limit):
                ax.set_ylim(middle - 1.25 * limit if (part.high - middle < -limit).any() else None,
                            middle + 1.25 * limit if (part.low - middle > limit).any() else None)
            for name, style in zip(names, ANCHOR_STYLES * len(names)):
                value = (anchors or {}).get(measure, {}).get(name)
                if value is not None and np.isfinite(value):
                    ax.axhline(value, linestyle=style, linewidth=1, color="0.35")
            ax.set_xlabel("training respondents")
            ax.set_title(measure.replace("_", " ") + (" (lower is better)" if measure == "log_loss" else ""))
        handles = [key(plt, name, styles[name]["color"], styles[name]["marker"], linestyle="-") for name in lines]
        handles += [key(plt, f"{name} (every respondent outside the panel)", "0.35", "",
                        linestyle=style) for name, style in zip(names, ANCHOR_STYLES * len(names))]
        fig.legend(handles=handles, loc="outside lower center", ncol=2)
        fig.suptitle(wrapped(title + ("; arrows: beyond the axis, value written" if arrows else ""), WIDTH, size + 1))
        tick_size(fig, size)
    return fig


def nearby(arrows: list[tuple], gap: float) -> list[list[tuple]]:
    """Arrows `(x in points, x, edge, value)` grouped left to right per edge: a new group where the next arrow on the
    same edge is more than `gap` points to the right of the last one."""
    groups = []
    for arrow in sorted(arrows, key=lambda a: (a[2], a[0])):
        if groups and groups[-1][-1][2] == arrow[2] and arrow[0] - groups[-1][-1][0] <= gap:
            groups[-1].append(arrow)
        else:
            groups.append([arrow])
    return groups
