"""The figure helpers every stage draws with: one headless `pyplot` with the study's style, a grid of item panels,
the text size a figure needs to be read at page width, and PNG plus PDF saved atomically. Each stage's figures live
in its own `figures` module."""
from __future__ import annotations

import math
from contextlib import contextmanager
from pathlib import Path

DPI = 150  # what `save_figure` writes the PNG at
SHOWN_PX = 1280  # figures are read at page width: a PNG is shown at most this many pixels wide
LEAST_PT = 8  # no text smaller than this as shown


def pyplot():
    """matplotlib's pyplot, headless (papermill and CI have no display), with the study's one style."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def shown_pt(size: float, width: float) -> float:
    """A font of `size` points in a figure saved `width` inches wide, as shown at page width: a PNG wider than
    `SHOWN_PX` is scaled down to it, a narrower one shown as it is."""
    return size * min(1.0, SHOWN_PX / (width * DPI))


def legible_size(width: float) -> float:
    """The smallest font size (in half points) that shows at `LEAST_PT` or more in a figure `width` inches wide
    (`save_figure`'s tight box adds a little: allowed for)."""
    return math.ceil(2 * LEAST_PT / shown_pt(1.0, width + 0.4)) / 2


@contextmanager
def text_size(plt, size: float):
    """Every text drawn inside at `size` points (the figure title one point larger)."""
    keys = ("font.size", "axes.titlesize", "axes.labelsize", "xtick.labelsize", "ytick.labelsize", "legend.fontsize",
            "legend.title_fontsize", "figure.labelsize")
    with plt.rc_context({**{k: size for k in keys}, "figure.titlesize": size + 1}):
        yield


def item_grid(plt, count: int, width: float, height: float, columns: int = 5, **subplots):
    """A grid of up to `columns` panels a row for `count` items, the unused panels hidden; `subplots` go to
    `plt.subplots` (`layout="constrained"`, for one)."""
    columns = min(columns, count)
    rows = -(-count // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(width * columns, height * rows), sharey=True, squeeze=False,
                             **subplots)
    for ax in axes.flat[count:]:
        ax.set_visible(False)
    return fig, axes


def save_figure(fig, stem: Path) -> None:
    stem.parent.mkdir(parents=True, exist_ok=True)
    for suffix in (".png", ".pdf"):
        tmp = stem.with_name(f".{stem.name}.tmp{suffix}")
        fig.savefig(tmp, dpi=DPI, bbox_inches="tight", metadata={"CreationDate": None} if suffix == ".pdf" else {})
        tmp.replace(stem.with_suffix(suffix))
