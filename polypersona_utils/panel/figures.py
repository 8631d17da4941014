"""The synthetic panel's figures (notebook 06): per item and party group, real against every variant; calibration;
and what the panel is worth in real respondents (`panel_worth`). Each is drawn by a `draw_*` function that returns
the figure, to be read at page width (`reporting.plots.legible_size`): legends outside the panels, each variant its
own colour and marker, points of one group set slightly apart so that none hides another, and no point drawn where a
value is missing."""
from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pandas as pd

from ..reporting.plots import item_grid, legible_size, pyplot, save_figure, text_size

WIDTH = 8.5  # inches: at dpi 150 about page width, so that the text is drawn at about the size it is shown
MARKERS = "o^vDP<X>phd*"  # one a variant, in order; the black square is the real answers' (or the classical's)
REAL = {"color": "black", "marker": "s"}


def variant_styles(plt, names) -> dict[str, dict]:
    """Each name's colour and marker, distinct in order (ten colours, then twenty)."""
    colours = plt.get_cmap("tab10" if len(names) <= 10 else "tab20").colors
    return {name: {"color": colours[k % len(colours)], "marker": MARKERS[k % len(MARKERS)]}
            for k, name in enumerate(names)}


def dodged(count: int, span: float) -> np.ndarray:
    """`count` offsets spread evenly over `span`, centred on 0: where the points of one group go."""
    return np.linspace(-span / 2, span / 2, count) if count > 1 else np.zeros(count)


def key(plt, label: str, color, marker: str, linestyle: str = "none", **style):
    """A legend entry for a marker (and line) drawn in several panels."""
    return plt.Line2D([], [], color=color, marker=marker, linestyle=linestyle, label=label, **style)


def plot_finite(ax, x, y, *args, **kwargs):
    """`ax.plot` of the points where both coordinates are numbers; nothing where none is."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    if keep.any():
        ax.plot(x[keep], y[keep], *args, **kwargs)


def wrapped(text: str, inches: float, size: float) -> str:
    """`text` broken into lines that fit `inches` at `size` points (an average character is about 0.55 em)."""
    return textwrap.fill(text, max(20, int(inches * 72 / (0.55 * size))))


def tick_size(fig, size: float) -> None:
    """Tick labels at `size` points, also those matplotlib makes when it draws (after `text_size` has ended)."""
    for ax in fig.axes:
        ax.tick_params(labelsize=size)


def panel_figures(frame: pd.DataFrame, tables: dict[str, pd.DataFrame], folder: Path, title: str,
                  party_order: list[str] = (), least: int = 10) -> None:
    """`panel_by_party` (`draw_by_party`), `panel_calibration` (`draw_calibration`) and `panel_worth` (the main
    run's, `worth_figure`), each as PNG and PDF in `folder`."""
    plt = pyplot()
    for name, fig in (("panel_by_party", draw_by_party(frame, title, party_order, least)),
                      ("panel_calibration", draw_calibration(tables["panel_calibration"], title))):
        save_figure(fig, folder / name)
        plt.close(fig)
    if "panel_worth" in tables:  # the main run's
        worth_figure(tables["panel_worth"], folder / "panel_worth", title)
    if "panel_verdict" in tables:
        fig = draw_verdict(tables["panel_verdict"], title)
        save_figure(fig, folder / "panel_verdict")
        pyplot().close(fig)


def party_groups(frame: pd.DataFrame, party_order, least: int) -> list[str]:
    """The party groups of at least `least` respondents, in `party_order` (the survey's order of its labels; others
    after, alphabetically)."""
    sizes = frame.drop_duplicates("persona_id").party.value_counts()
    rank = {p: i for i, p in enumerate(party_order)}
    return sorted((p for p in sizes.index if sizes[p] >= least), key=lambda p: (rank.get(p, len(rank)), p))


def draw_by_party(frame: pd.DataFrame, title: str, party_order=(), least: int = 10):
    """Per linked item, the share answering the first option in each party group of at least `least` respondents
    (`party_groups`): the real share as a black bar across the group, each variant's mean probability of that option
    as its marker along the bar (the groups are categories, not a scale). Two panels a row (up to three items, one
    row)."""
    plt = pyplot()
    items = sorted(frame.question_id.unique())
    variants = list(frame.variant.unique())
    parties = party_groups(frame, party_order, least)
    styles = variant_styles(plt, variants)
    columns = len(items) if len(items) <= 3 else 2
    size = legible_size(WIDTH)
    x, offsets = np.arange(len(parties)), dodged(len(variants), 0.7)
    with text_size(plt, size):
        fig, axes = item_grid(plt, len(items), WIDTH / columns, 2.6 if columns == 2 else 3.4, columns,
                              layout="constrained")
        for k, (ax, qid) in enumerate(zip(axes.flat, items)):
            on_item = frame[frame.question_id == qid]
            first = on_item.options.iloc[0][0]
            reference = on_item[on_item.variant == variants[0]]
            real = (reference.real_option == first).groupby(reference.party).mean().reindex(parties).to_numpy(float)
            drawn = np.isfinite(real)  # NaN: a group the first variant has no one of
            ax.hlines(real[drawn], x[drawn] - 0.42, x[drawn] + 0.42, color="black", linewidth=2.5, zorder=1)
            for offset, variant in zip(offsets, variants):
                part = on_item[on_item.variant == variant]
                means = part.probabilities.str[0].groupby(part.party).mean().reindex(parties)  # NaN: none scored
                plot_finite(ax, x + offset, means, linestyle="none", markersize=5, alpha=0.85, zorder=2,
                            markeredgewidth=0.4, markeredgecolor="white", **styles[variant])
            ax.set_xticks(x, parties, rotation=35, ha="right", rotation_mode="anchor")
            ax.tick_params(axis="x", labelbottom=k + columns >= len(items))  # the lowest panel of each column
            ax.set_xlim(-0.6, len(parties) - 0.4)
            ax.grid(axis="y", color="0.9", linewidth=0.8)
            ax.set_axisbelow(True)
            name = on_item.survey_item.iloc[0] if "survey_item" in on_item else qid
            ax.set_title(wrapped(f"{name}: share '{first}'", WIDTH / columns, size))
        fig.supylabel("share / mean probability")
        handles = [key(plt, "real respondents (bar: share)", "black", "none", "-", linewidth=2.5),
                   *(key(plt, v, **styles[v]) for v in variants)]
        fig.legend(handles=handles, loc="outside lower center", ncol=3)
        fig.suptitle(wrapped(f"Per item and party group (groups of at least {least} respondents): real answers "
                             f"against each variant's distribution ({title})", WIDTH, size + 1))
        tick_size(fig, size)
    return fig


def draw_calibration(calibration: pd.DataFrame, title: str):
    """Predicted probability against observed share, one line per variant, each bin's marker sized by its pairs."""
    plt = pyplot()
    variants = list(dict.fromkeys(calibration.variant))
    styles = variant_styles(plt, variants)
    size = legible_size(WIDTH)
    most = calibration.pairs.max()
    with text_size(plt, size):
        fig, ax = plt.subplots(figsize=(WIDTH * 0.85, 5.2), layout="constrained")
        ax.plot([0, 1], [0, 1], color="grey", linewidth=1, zorder=0)
        for variant in variants:
            part = calibration[(calibration.variant == variant) & calibration.predicted.notna()
                               & calibration.observed.notna()]
            ax.plot(part.predicted, part.observed, "-", color=styles[variant]["color"], alpha=0.6, linewidth=1.2)
            ax.scatter(part.predicted, part.observed, s=6 + 90 * part.pairs.fillna(0) / most, alpha=0.85,
                       linewidths=0.4, edgecolors="white", **styles[variant])
        ax.set(xlabel="predicted probability of an option", ylabel="observed share of real answers",
               xlim=(0, 1), ylim=(0, 1), aspect="equal")
        ax.set_title(wrapped(f"Calibration ({title}; marker area: pairs in the bin)", WIDTH * 0.5, size))
        fig.legend(handles=[key(plt, v, linestyle="-", **styles[v]) for v in variants], loc="outside right upper")
        tick_size(fig, size)
    return fig


def worth_figure(table: pd.DataFrame, stem: Path, title: str) -> None:
    """`panel_worth` (`draw_worth`), as PNG and PDF at `stem`."""
    plt = pyplot()
    fig = draw_worth(table, title)
    save_figure(fig, stem)
    plt.close(fig)


def draw_worth(table: pd.DataFrame, title: str):
    """`panel_worth`, against the number of real respondents sampled: the coverage of the classical and the
    prediction-powered 95 % intervals (on a y-range just wide enough: they differ by a point or two), the coverage of
    the synthetic panel's own intervals (0 to 1, below), and the prediction-powered estimate's effective sample size
    per 100 real respondents (right). One colour and marker a predictor, set a little apart along n so that none
    hides another; one legend below the panels."""
    plt = pyplot()
    predictors = list(dict.fromkeys(table.predictor))
    styles = variant_styles(plt, predictors)
    ns = np.sort(table.n.unique()).astype(float)
    step = np.diff(ns).min() if len(ns) > 1 else max(ns[0] * 0.2, 1.0)
    shift = dict(zip(["classical", *predictors], dodged(len(predictors) + 1, 0.3 * step)))
    table = table.sort_values("n", kind="stable")
    classical = table[table.estimator == "classical"].drop_duplicates("n")
    ppi, synthetic = table[table.estimator == "ppi"], table[table.estimator == "synthetic"]
    near = pd.concat([classical.coverage, ppi.coverage]).dropna()
    low, high = min([*near, 0.92]), max([*near, 0.95])  # the band's lower edge and the nominal level in view
    margin = 0.08 * (high - low)
    size = legible_size(WIDTH)
    line = {"markersize": 5.5, "linewidth": 1.2, "alpha": 0.9}
    with text_size(plt, size):
        fig, axes = plt.subplot_mosaic([["cover", "worth"], ["synthetic", "worth"]], figsize=(WIDTH, 6.4),
                                       height_ratios=[2, 1.2], layout="constrained")
        cover, alone, worth = axes["cover"], axes["synthetic"], axes["worth"]
        for ax in (cover, alone):
            ax.axhspan(0.92, 0.98, color="0.92", zorder=0)
            ax.axhline(0.95, color="0.5", linewidth=0.8, linestyle="--", zorder=0)
        plot_finite(cover, classical.n + shift["classical"], classical.coverage, "-", **REAL, **line)
        plot_finite(worth, classical.n + shift["classical"], classical.worth_per_100, "-", **REAL, **line)
        for predictor in predictors:
            mine, only = ppi[ppi.predictor == predictor], synthetic[synthetic.predictor == predictor]
            plot_finite(cover, mine.n + shift[predictor], mine.coverage, "-", **styles[predictor], **line)
            plot_finite(alone, only.n + shift[predictor], only.coverage, "-", **styles[predictor], **line)
            plot_finite(worth, mine.n + shift[predictor], mine.worth_per_100, "-", **styles[predictor], **line)
        cover.set(ylim=(low - margin, high + margin), title="Coverage: classical and prediction-powered",
                  ylabel="coverage of the true share")
        alone.set(ylim=(-0.04, 1.04), title="Coverage: synthetic panel alone", ylabel="coverage",
                  xlabel="real respondents sampled (n)")
        worth.set(title="Effective sample size (prediction-powered)", ylabel="effective n per 100 sampled",
                  xlabel="real respondents sampled (n)")
        for ax in (cover, alone, worth):
            ax.set_xticks(ns)
            ax.set_xlim(ns[0] - 0.5 * step, ns[-1] + 0.5 * step)
        cover.tick_params(axis="x", labelbottom=False)
        handles = [key(plt, "classical (real sample alone)", linestyle="-", **REAL),
                   *(key(plt, p, linestyle="-", **styles[p]) for p in predictors),
                   plt.Rectangle((0, 0), 1, 1, color="0.92", label="92-98 % coverage (dashed: 95 %)")]
        fig.legend(handles=handles, loc="outside lower center", ncol=3)
        fig.suptitle(wrapped(f"Prediction-powered estimates of answer shares on the held-out panel, 95 % intervals "
                             f"({title})", WIDTH, size + 1))
        tick_size(fig, size)
    return fig


KIND_STYLE = {"model": {"color": "tab:blue", "marker": "o"}, "reference": {"color": "tab:orange", "marker": "s"},
              "anchor": {"color": "tab:green", "marker": "D"}, "control": {"color": "tab:grey", "marker": "x"}}
KIND_LABEL = {"model": "model variant", "reference": "reference (same training respondents)",
              "anchor": "anchor (every respondent outside the panel)", "control": "control"}
AGAINST_LABEL = {"marginal": "population marginal (persona-blind)",
                 "statistician": "statistician on the same card (baseline-logistic)"}


def off_scale(low: np.ndarray, high: np.ndarray, factor: float = 3.0) -> float:
    """The axis limit past which a row is drawn as an arrow at the edge (its value written beside it): `factor`
    times the median row's reach, when some row's whole interval lies beyond it; else inf (every row drawn)."""
    reach = np.maximum(np.abs(low), np.abs(high))
    finite = reach[np.isfinite(reach)]
    limit = factor * float(np.median(finite)) if finite.size else 0.0
    beyond = (low > limit) | (high < -limit)
    return limit if limit > 0 and beyond.any() else float("inf")


def draw_verdict(verdict: pd.DataFrame, title: str):
    """The headline figure: each row of `panel_verdict` (best first, top to bottom), its paired log-loss difference
    to the population marginal and to the same-card statistician with the interval; left of zero is better. A row
    far beyond the others (`off_scale`: a zero-shot model) is an arrow at the axis' edge with its value written, so
    that the rows near zero can be told apart; a row without a value (NaN) is not drawn."""
    plt = pyplot()
    against = [name for name in AGAINST_LABEL if f"vs_{name}" in verdict]
    height = 1.2 + 0.32 * len(verdict)
    size = legible_size(WIDTH)
    with text_size(plt, size):
        fig, axes = plt.subplots(1, len(against), figsize=(WIDTH, height), sharey=True, squeeze=False,
                                 layout="constrained")
        y = np.arange(len(verdict))[::-1]
        for ax, name in zip(axes[0], against):
            centre, low, high = (verdict[f"vs_{name}{s}"].to_numpy(float) for s in ("", "_lo", "_hi"))
            limit = off_scale(low, high)
            far = np.isfinite(centre) & ((low > limit) | (high < -limit))
            ax.axvline(0, color="0.4", linewidth=1)
            for kind, style in KIND_STYLE.items():
                rows = (verdict.kind == kind).to_numpy() & np.isfinite(centre) & ~far
                if rows.any():
                    errors = np.vstack([centre[rows] - low[rows], high[rows] - centre[rows]])
                    ax.errorbar(centre[rows], y[rows], xerr=np.abs(errors), linestyle="none", capsize=3,
                                label=KIND_LABEL[kind], **style)
            if far.any():
                edge = 1.15 * limit
                for row in np.flatnonzero(far):
                    side = np.sign(centre[row])
                    ax.plot(side * edge, y[row], marker=">" if side > 0 else "<",
                            **{k: v for k, v in KIND_STYLE[verdict.kind.iloc[row]].items() if k != "marker"})
                    ax.annotate(f"{centre[row]:+.2f}", (side * edge, y[row]), xytext=(-9 * side, 0),
                                textcoords="offset points", ha="right" if side > 0 else "left", va="center")
                ax.set_xlim(-1.25 * limit if (centre < -limit).any() else None,
                            1.25 * limit if (centre > limit).any() else None)
            ax.set_title(wrapped(f"against the {AGAINST_LABEL[name]}", WIDTH / len(against), size))
            ax.set_xlabel("difference in log-loss (nats; < 0: better)")
            ax.grid(axis="x", color="0.9")
        axes[0][0].set_yticks(y, verdict.variant)
        handles, labels = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncol=2)
        fig.suptitle(wrapped(f"Predicting held-out respondents' real answers: each variant minus each reference, "
                             f"paired 95 % intervals; arrows: beyond the axis, value written ({title})", WIDTH,
                             size + 1))
        tick_size(fig, size)
    return fig
