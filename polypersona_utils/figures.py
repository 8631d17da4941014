"""Every figure of the study, written as PNG and PDF through one style helper (`pyplot`)."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from . import paths


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


def dataset_figure(counts_long: pd.DataFrame, demographics: pd.DataFrame, survey_title: str, stem: Path) -> None:
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    by_type = counts_long.pivot_table(index="domain", columns="question_type", values="records", aggfunc="sum",
                                      fill_value=0)
    by_type.loc[by_type.sum(axis=1).sort_values().index].plot.barh(stacked=True, ax=left, width=0.8)
    left.set(title="Records by domain and question type", xlabel="records", ylabel="")
    education = demographics[demographics["variable"] == "education"].set_index("category")
    education[["panel_pct", "survey_pct"]].rename(
        columns={"panel_pct": "persona panel", "survey_pct": f"{survey_title} (all respondents)"}).plot.barh(ax=right)
    right.set(title=f"Education: persona panel against {survey_title}", xlabel="percent", ylabel="")
    fig.tight_layout()
    save_figure(fig, stem)
    plt.close(fig)


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
