"""Notebook 05's figures: each metric against LoRA rank, and each ablation run minus the reference run."""
from __future__ import annotations

import json

import pandas as pd

from .. import paths
from ..reporting.plots import pyplot, save_figure


def ablation_figures(profile: str, lora: pd.DataFrame, differences: pd.DataFrame, summary_metrics,
                     reference: str, profile_rank: int) -> None:
    """Metric against rank (ablation runs only: same records), and each run minus the reference with intervals."""
    plt = pyplot()
    runs = lora[lora.run != "main"]
    ranked = runs[runs.overrides.apply(lambda o: set(json.loads(o)) <= {"lora.r", "lora.alpha"})].copy()
    ranked["rank"] = ranked.overrides.apply(lambda o: json.loads(o).get("lora.r", profile_rank))
    ranked = ranked.sort_values("rank")
    def rank_axis(ax, title: str) -> None:
        ax.set(xscale="log", xlabel="LoRA rank r (alpha = 2 r)", title=title)
        ax.set_xticks(ranked["rank"].tolist(), [str(r) for r in ranked["rank"]])
        ax.minorticks_off()

    fig, axes = plt.subplots(2, 3, figsize=(12, 7))
    for ax, metric in zip(axes[0], summary_metrics):
        # clip: an interval of zero width can come out a rounding error below its mean
        err = [(ranked[metric] - ranked[f"{metric}_low"]).clip(lower=0),
               (ranked[f"{metric}_high"] - ranked[metric]).clip(lower=0)]
        ax.errorbar(ranked["rank"], ranked[metric], yerr=err, fmt="o-", capsize=3)
        rank_axis(ax, metric)
    for ax, (column, label) in zip(axes[1], (("trainable_parameters", "trainable parameters"),
                                             ("train_wall_s", "training time (s)"),
                                             ("peak_process_memory_gib", "peak process memory (GiB)"))):
        ax.plot(ranked["rank"], ranked[column].astype(float), "o-")
        rank_axis(ax, label)
        ax.set_ylim(bottom=0)  # from zero: small cost differences should look small
    fig.suptitle(f"Quality (95 % intervals) and cost against LoRA rank ({profile} profile, ablation subset)")
    fig.tight_layout()
    save_figure(fig, paths.figures_dir(profile) / "ablation_rank")
    plt.close(fig)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.5), sharey=True)
    for ax, metric in zip(axes, ("rouge1", "bertscore_f1")):
        rows = differences[differences.metric == metric]
        err = [(rows.difference - rows.low).clip(lower=0), (rows.high - rows.difference).clip(lower=0)]
        ax.errorbar(rows.difference, rows.comparison, xerr=err, fmt="o", capsize=3)
        ax.axvline(0, color="grey", linewidth=1)
        ax.set(xlabel=f"{metric}: run minus {reference}", title=metric)
    fig.suptitle(f"Each ablation against {reference} on the same records, 95 % paired intervals ({profile})")
    fig.tight_layout()
    save_figure(fig, paths.figures_dir(profile) / "ablation_runs")
    plt.close(fig)
