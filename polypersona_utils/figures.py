"""Every figure of the study, written as PNG and PDF through one style helper (`pyplot`)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
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


def metric_figures(tables: dict[str, pd.DataFrame], folder: Path, profile: str) -> None:
    """Text metrics with intervals per variant, and every metric per domain."""
    from .metrics import SURVEY_METRICS, TEXT_METRICS

    plt = pyplot()
    text = tables["model_comparison"]
    fig, axes = plt.subplots(1, len(TEXT_METRICS), figsize=(3.2 * len(TEXT_METRICS), 3.6), sharey=True)
    for ax, metric in zip(axes, TEXT_METRICS):
        err = [text[metric] - text[f"{metric}_low"], text[f"{metric}_high"] - text[metric]]
        ax.barh(text.variant, text[metric], xerr=err, capsize=3, color="tab:blue", alpha=0.8)
        ax.set_title(metric)
    fig.suptitle(f"Text metrics with 95 % persona-bootstrap intervals ({profile} profile)")
    fig.tight_layout()
    save_figure(fig, folder / "metric_bars")
    plt.close(fig)
    domain = tables["domain_metrics"]
    variants = list(domain.variant.unique())
    fig, axes = plt.subplots(1, len(variants), figsize=(5.5 * len(variants), 4.2), squeeze=False)
    for ax, variant in zip(axes[0], variants):
        grid = domain[domain.variant == variant].set_index("domain")[list(TEXT_METRICS + SURVEY_METRICS)]
        image = ax.imshow(grid.to_numpy(), vmin=0, vmax=1, cmap="viridis", aspect="auto")
        ax.set(xticks=range(grid.shape[1]), yticks=range(grid.shape[0]), title=variant)
        ax.set_xticklabels(grid.columns, rotation=60, ha="right")
        ax.set_yticklabels(grid.index)
    fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8)
    save_figure(fig, folder / "domain_heatmap")
    plt.close(fig)


def distribution_figure(frame: pd.DataFrame, bank, shares: dict[str, dict[str, float]], survey_title: str,
                        stem: Path) -> None:
    """Per linked survey item asked in the test split: all respondents' answer shares against each variant's."""
    from .respondents import linked_by_id

    plt = pyplot()
    linked = linked_by_id(bank)
    asked = [qid for qid in sorted(linked) if qid in set(frame.question_id)]
    if not asked:
        return
    variants = list(frame.variant.unique())
    fig, axes = item_grid(plt, len(asked), 3.4, 3.4)
    for ax, qid in zip(axes.flat, asked):
        options = list(linked[qid].options)
        width = 0.8 / (len(variants) + 1)
        ax.bar(np.arange(len(options)), [shares[linked[qid].survey_item][o] for o in options], width,
               label=f"{survey_title} respondents", color="black")
        for k, variant in enumerate(variants, start=1):
            parsed = frame[(frame.question_id == qid) & (frame.variant == variant)].parsed_option.dropna()
            total = max(len(parsed), 1)
            ax.bar(np.arange(len(options)) + k * width, [(parsed == o).sum() / total for o in options], width,
                   label=variant)
        ax.set_xticks(np.arange(len(options)) + 0.4, options, rotation=30, ha="right")
        ax.set_title(linked[qid].survey_item)
    for row in axes:
        row[0].set_ylabel("share of answers")
    axes.flat[len(asked) - 1].legend(fontsize=7, loc="upper right")
    fig.suptitle(f"Synthetic against real answer distributions, linked {survey_title} items (subgroups: "
                 "tables/subgroup_alignment)")
    fig.tight_layout()
    save_figure(fig, stem)
    plt.close(fig)


def subgroup_distribution_figure(frame: pd.DataFrame, cards: dict[str, dict], items: dict[str, str], survey,
                                 stem: Path) -> None:
    """Per demographic subgroup: the answer distribution over the linked survey items asked in the test split, real
    (all the survey's respondents in the subgroup, the same items weighted as asked) against each variant's. Options
    are stacked by position in the item's order (the legend names the first item's)."""
    from .baselines import BASELINE
    from .demographics import SUBGROUPS, demographic_frame
    from .respondents import subgroup_distributions

    plt = pyplot()
    linked = frame[frame.question_id.isin(items) & (frame.reference_source == "real_respondent")].copy()
    if linked.empty:
        return
    width = max(len(survey.options(i)) for i in set(items.values()))
    padded = lambda values: list(values) + [0.0] * (width - len(values))  # noqa: E731
    legend = survey.options(items[sorted(linked.question_id.unique())[0]])
    real = subgroup_distributions(survey).set_index(["item", "variable", "category", "option"])["share"]
    groups = demographic_frame([cards[p] for p in linked.persona_id])
    variants = [v for v in linked.variant.unique() if v != BASELINE]
    colours = plt.get_cmap("coolwarm")(np.linspace(0, 1, width))
    fig, axes = plt.subplots(len(SUBGROUPS), 1, figsize=(12, 2.8 * len(SUBGROUPS)))
    for ax, variable in zip(axes, SUBGROUPS):
        linked["group"] = groups[variable].to_numpy()
        labels, stacks = [], []
        rank = {label: i for i, label in enumerate(survey.label_order())}
        for category in sorted(linked.group.unique(), key=lambda c: (rank.get(c, len(rank)), c)):
            part = linked[linked.group == category]
            asked = part[part.variant == variants[0]].question_id.map(items)  # one row per question asked
            population = np.mean([padded([real.get((item, variable, category, o), 0.0) for o in survey.options(item)])
                                  for item in asked], axis=0)
            labels.append(f"{category}\nreal")
            stacks.append(population)
            for variant in variants:
                answers = part[part.variant == variant]
                labels.append(variant.replace("smollm2-135m-", ""))
                stacks.append(np.mean([padded([float(a == o) for o in survey.options(items[q])])
                                       for a, q in zip(answers.parsed_option, answers.question_id)], axis=0))
        bottom = np.zeros(len(stacks))
        for k in range(width):
            heights = np.array([s[k] for s in stacks])
            ax.bar(range(len(stacks)), heights, bottom=bottom, color=colours[k],
                   label=legend[k] if k < len(legend) else f"option {k + 1}")
            bottom += heights
        ax.set_xticks(range(len(stacks)), labels, fontsize=6, rotation=90)
        ax.set(ylabel="share", title=f"by {variable.replace('_', ' ')}")
    axes[0].legend(fontsize=7, loc="upper right", ncol=3)
    fig.suptitle(f"Answers to the linked {survey.title} items per subgroup: real respondents against each variant "
                 "(unparseable answers leave the bar short of 1)")
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
