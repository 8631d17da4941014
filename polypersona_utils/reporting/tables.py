"""Tables written under results/<profile>/ (CSV, Markdown and LaTeX side by side), their check against what is
stored, and the banner that says which profile a page shows."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..provenance import atomic_write_text

# One line per table, heading its Markdown file: what a row is and how to read the columns.
LEGENDS = {
    "model_comparison": "per variant, text metrics of its answers against the references (mean, 95 % persona-bootstrap interval)",
    "survey_metrics": "per variant, survey metrics of closed answers (agreement, unparseable share, distribution alignment)",
    "domain_metrics": "per variant and survey domain, the text metrics",
    "closed_alignment": "per variant, agreement with the real respondent and per linked item 1 - W1/W1max and JS distance",
    "paired_differences": "fine-tuned minus zero-shot on the same records, persona-bootstrap interval of the difference",
    "subgroup_alignment": "per variant and subgroup, alignment of its answer distribution with the survey's",
    "persona_fidelity": "per variant, how well answers agree with the persona card",
    "diversity": "per variant, lexical diversity of the open answers",
    "dataset_counts": "records per split, domain and question type",
    "persona_demographics_vs_survey": "the persona panel's demographics against the survey's",
    "ablations": "per ablation run (and the main run, for scale), its metrics",
    "ablation_differences": "each run minus the reference run on the same test records, paired persona bootstrap",
    "learning_curve": "per point (its recipe, its levers: e3 three epochs, lr its own learning rate) and variant, the "
                      "panel's measures against the number of training respondents, and the fine-tuned model minus "
                      "baseline-logistic (fitted on the same respondents), paired",
    "panel_new_items": "per point and variant, on linked items held out of training (every fold's held-out pairs): "
                       "log-loss, accuracy, subgroup effects, and each model minus the item-blind references, paired",
    "panel_new_items_worth": "what each variant is worth in real respondents on the held-out items (as panel_worth)",
    "panel_alignment": "per variant and subgroup, 1 - W1/W1max of mean synthetic vs real shares (higher is closer); "
                       "human-split-half rows are the ceiling",
    "panel_individual": "per variant, log-loss (lower is better) and accuracy of each held-out respondent's real answer",
    "panel_effects": "per variant, how its subgroup differences track the survey's: correlation and slope (1 matches); each interval's method in `*_ci_method` (BCa, or the stated fallback)",
    "panel_paired": "model minus reference on the same respondent-bootstrap draws (log-loss: negative is better; slope: "
                    "positive)",
    "panel_models": "each later model family minus the first, variant for variant, on the same respondent-bootstrap "
                    "draws (log-loss: negative is better; slope and stacking gain: positive is better)",
    "panel_stacking": "log-loss of a card regression without and with the model's probabilities, cross-fitted; gain > 0 "
                      "means the model adds information",
    "panel_subpop_units": "SubPOP's W1 / (options - 1) over subgroup x item cells (lower is closer)",
    "panel_calibration": "per variant and probability bin, predicted probability against observed share",
    "panel_order_effect": "per variant, mean total variation between the given and the reversed option order",
    "panel_verdict": "per variant and reference, best first: log-loss, paired differences to the population marginal "
                     "and to the same-card statistician (baseline-logistic), subgroup-effect slope, worth per 100 real "
                     "respondents at the middle sample size",
    "panel_worth": "per predictor, sample size n and estimator: coverage of 95 % intervals, width, bias, and the "
                   "effective sample size of prediction-powered estimates (worth_per_100: real respondents per 100 sampled)",
}


def write_table(table: pd.DataFrame, stem: Path, caption: str = "", float_format: str = "%.4f") -> None:
    """CSV (exact), Markdown (reading: headed by the caption and the table's legend) and LaTeX (papers) side by
    side."""
    digits = float_format.strip("%f").lstrip(".")
    atomic_write_text(stem.with_suffix(".csv"), table.to_csv(index=False, float_format=float_format))
    legend = LEGENDS.get(stem.name)
    heading = (f"**{caption or stem.name}**" + (f": {legend}" if legend else "") + "\n\n") if caption or legend else ""
    atomic_write_text(stem.with_suffix(".md"), heading + table.to_markdown(index=False, floatfmt=f".{digits}f") + "\n")
    atomic_write_text(stem.with_suffix(".tex"), table.to_latex(index=False, float_format=float_format,
                                                               caption=caption or None, label=f"tab:{stem.name}"))


def written_tables(folder: Path, names) -> dict[str, pd.DataFrame]:
    """The tables `names` as `write_table` left them in `folder` (the CSVs, read back exactly)."""
    return {name: pd.read_csv(Path(folder) / f"{name}.csv", float_precision="round_trip") for name in names}


def profile_banner(config) -> str:
    if config.profile == "paper":
        return "Profile `paper`: the paper's settings (hub models, full scale)."
    return (f"Profile `{config.profile}`: embedded-default scale on CPU. These are NOT the paper's numbers; "
            "they show the pipeline on a small, locally available model and data.")
