"""The synthetic panel's figures (notebook 06): per item and party group, real against every variant; calibration;
and what the panel is worth in real respondents (`panel_worth`)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..reporting.plots import item_grid, pyplot, save_figure


def panel_figures(frame: pd.DataFrame, tables: dict[str, pd.DataFrame], folder: Path, title: str,
                  party_order: list[str] = (), least: int = 10) -> None:
    """Per linked item, the share answering the first option ("Too little") in each party group of at least `least`
    respondents, in `party_order` (the survey's order of its labels; others after, alphabetically), real against
    every variant (points: the groups are categories, not a scale); a calibration plot, predicted probability
    against observed share, each bin's marker sized by its pairs; and `panel_worth` (the main run's)."""
    plt = pyplot()
    items = sorted(frame.question_id.unique())
    variants = list(frame.variant.unique())
    sizes = frame.drop_duplicates("persona_id").party.value_counts()
    rank = {p: i for i, p in enumerate(party_order)}
    parties = sorted((p for p in sizes.index if sizes[p] >= least), key=lambda p: (rank.get(p, len(rank)), p))
    fig, axes = item_grid(plt, len(items), 3.6, 3.2)
    x = np.arange(len(parties))
    for ax, qid in zip(axes.flat, items):
        on_item = frame[frame.question_id == qid]
        first = on_item.options.iloc[0][0]
        reference = on_item[on_item.variant == variants[0]]
        real = [float((reference[reference.party == p].real_option == first).mean()) for p in parties]
        ax.plot(x, real, "ks", label="real respondents", markersize=7)
        for variant in variants:
            part = on_item[on_item.variant == variant]
            ax.plot(x, [float(np.mean([pr[0] for pr in part[part.party == p].probabilities])) if (part.party == p).any()
                        else np.nan for p in parties], "o", label=variant, alpha=0.8, markersize=4)
        ax.set_xticks(x, parties, rotation=60, ha="right", fontsize=6)
        ax.set_title(f"{on_item.survey_item.iloc[0] if 'survey_item' in on_item else qid}: share '{first}'", fontsize=8)
    axes[0][0].set_ylabel("share / mean probability")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, loc="upper center", ncol=min(len(labels), 5), bbox_to_anchor=(0.5, 0))
    fig.suptitle(f"Per item and party group (groups of at least {least} respondents): real answers against each "
                 f"variant's distribution ({title})")
    fig.tight_layout()
    save_figure(fig, folder / "panel_by_party")
    plt.close(fig)
    calibration = tables["panel_calibration"]
    fig, ax = plt.subplots(figsize=(5, 4.5))
    ax.plot([0, 1], [0, 1], color="grey", linewidth=1)
    for variant, part in calibration.groupby("variant", sort=False):
        line, = ax.plot(part.predicted, part.observed, "-", label=variant, alpha=0.6)
        ax.scatter(part.predicted, part.observed, s=3 + 80 * part.pairs / calibration.pairs.max(),
                   color=line.get_color(), alpha=0.8)
    ax.set(xlabel="predicted probability of an option", ylabel="observed share of real answers",
           title=f"Calibration ({title}; marker area: pairs in the bin)", xlim=(0, 1), ylim=(0, 1))
    ax.legend(fontsize=6)
    fig.tight_layout()
    save_figure(fig, folder / "panel_calibration")
    plt.close(fig)
    if "panel_worth" in tables:  # the main run's
        worth_figure(tables["panel_worth"], folder / "panel_worth", title)


def worth_figure(table: pd.DataFrame, stem: Path, title: str) -> None:
    """`panel_worth`: coverage of each estimator's 95 % interval, and the prediction-powered estimate's effective
    sample size per 100 real respondents, against the number sampled; one line per predictor and estimator."""
    plt = pyplot()
    fig, (cover, worth) = plt.subplots(1, 2, figsize=(10, 4.2))
    cover.axhspan(0.92, 0.98, color="0.9", label="92-98 %")
    classical = table[(table.estimator == "classical")].drop_duplicates("n")
    cover.plot(classical.n, classical.coverage, "ks-", label="classical (real sample alone)")
    worth.plot(classical.n, classical.worth_per_100, "ks-", label="classical: 100")
    for predictor, part in table.groupby("predictor", sort=False):
        ppi, synthetic = part[part.estimator == "ppi"], part[part.estimator == "synthetic"]
        line, = cover.plot(ppi.n, ppi.coverage, "o-", label=f"{predictor}: prediction-powered")
        cover.plot(synthetic.n, synthetic.coverage, "x:", color=line.get_color(), label=f"{predictor}: synthetic only")
        worth.plot(ppi.n, ppi.worth_per_100, "o-", color=line.get_color(), label=predictor)
    cover.set(xlabel="real respondents sampled (n)", ylabel="coverage of the true share (95 % intervals)",
              ylim=(-0.02, 1.02), title="Coverage, mean over estimands")
    worth.set(xlabel="real respondents sampled (n)", ylabel="effective n per 100 sampled",
              title="Effective sample size per 100 real respondents")
    cover.legend(fontsize=6, loc="upper left", bbox_to_anchor=(0, -0.2), ncol=2)
    worth.legend(fontsize=6, loc="upper left", bbox_to_anchor=(0, -0.2), ncol=2)
    fig.suptitle(f"Prediction-powered estimates of answer shares on the held-out panel ({title})")
    fig.tight_layout()
    save_figure(fig, stem)
    plt.close(fig)
