"""The figure helpers every stage draws with: one headless `pyplot` with the study's style, a grid of item panels,
and PNG plus PDF saved atomically. Each stage's figures live in its own `figures` module."""
from __future__ import annotations

from pathlib import Path


def pyplot():
    """matplotlib's pyplot, headless (papermill and CI have no display), with the study's one style."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def item_grid(plt, count: int, width: float, height: float):
    """A grid of up to five panels a row for `count` items, the unused panels hidden."""
    columns = min(5, count)
    rows = -(-count // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(width * columns, height * rows), sharey=True, squeeze=False)
    for ax in axes.flat[count:]:
        ax.set_visible(False)
    return fig, axes


def save_figure(fig, stem: Path) -> None:
    stem.parent.mkdir(parents=True, exist_ok=True)
    for suffix in (".png", ".pdf"):
        tmp = stem.with_name(f".{stem.name}.tmp{suffix}")
        fig.savefig(tmp, dpi=150, bbox_inches="tight", metadata={"CreationDate": None} if suffix == ".pdf" else {})
        tmp.replace(stem.with_suffix(suffix))
