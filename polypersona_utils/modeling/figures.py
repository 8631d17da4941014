"""Notebook 02's figure: each training run's loss curve."""
from __future__ import annotations

from pathlib import Path

from ..reporting.plots import pyplot, save_figure


def loss_figure(history: list[dict], stem: Path, title: str) -> None:
    plt = pyplot()
    train = [(h["step"], h["loss"]) for h in history if "loss" in h]
    val = [(h["step"], h["eval_loss"]) for h in history if "eval_loss" in h]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    if train:
        ax.plot(*zip(*train), label="train loss", lw=1)
    if val:
        ax.plot(*zip(*val), "o-", label="val loss")
    ax.set(xlabel="optimizer step", ylabel="loss", title=f"Training loss: {title}")
    ax.legend()
    fig.tight_layout()
    save_figure(fig, stem)
    plt.close(fig)
