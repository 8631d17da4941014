"""Notebook 04's figures: text metrics with intervals, every metric per domain, and closed answers against the
survey's real respondents (per linked item, per demographic subgroup)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..dataset.demographics import SUBGROUPS, demographic_frame
from ..dataset.respondents import linked_by_id
from ..reporting.plots import item_grid, pyplot, save_figure
from .baselines import BASELINE
from .metrics import SURVEY_METRICS, TEXT_METRICS
from .survey_alignment import subgroup_distributions


def metric_figures(tables: dict[str, pd.DataFrame], folder: Path, profile: str) -> None:
    """Text metrics with intervals per variant, and every metric per domain."""
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
