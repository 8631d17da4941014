"""Notebook 04's section of the results README: the metric tables in words."""
from __future__ import annotations

import pandas as pd

from ..reporting.tables import profile_banner
from ..stats import MIN_PERSONAS_FOR_INTERVALS
from .baselines import BASELINE


def findings(text: pd.DataFrame, closed: pd.DataFrame, paired: pd.DataFrame) -> list[str]:
    """Plain-language statements read off the tables: each fine-tuned model against its zero-shot base and against
    the non-LLM baseline, on ROUGE-1 (paired interval) and on agreement with real respondents."""
    out = []
    agreement = closed.set_index("variant")["agreement_with_respondent"]
    for variant in [v for v in text.variant if v.endswith("-lora")]:
        for other in (variant.replace("-lora", "-zeroshot"), BASELINE):
            row = paired[(paired.comparison == f"{variant} - {other}") & (paired.metric == "rouge1")]
            if row.empty:
                continue
            row = row.iloc[0]
            if row.personas < MIN_PERSONAS_FOR_INTERVALS:
                out.append(f"- `{variant}` against `{other}`: only {row.personas} test personas, too few to say.")
                continue
            verdict = ("higher" if row.low > 0 else "lower" if row.high < 0 else "not distinguishable from")
            out.append(f"- `{variant}` scores {verdict} {'than ' if verdict != 'not distinguishable from' else ''}"
                       f"`{other}` on ROUGE-1 ({row.difference:+.3f} [{row.low:+.3f}, {row.high:+.3f}]).")
        if variant in agreement and BASELINE in agreement:
            ours, theirs = agreement[variant], agreement[BASELINE]
            relation = "the same as" if abs(ours - theirs) < 1e-9 else "above" if ours > theirs else "below"
            out.append(f"- On linked closed questions `{variant}` agrees with the real respondent {ours:.3f} of the "
                       f"time, {relation} the training majority answer ({theirs:.3f}): "
                       + ("it has learned no more about these people than the most common answer."
                          if ours <= theirs else "it knows something about people beyond the most common answer."))
    return out


def metrics_section(config, tables: dict[str, pd.DataFrame], run_name: str) -> str:
    """Notebook 04's section: the tables in words, and how they relate to the paper's."""

    text, closed, paired = tables["model_comparison"], tables["closed_alignment"], tables["paired_differences"]

    def interval(row, metric):
        return f"{row[metric]:.3f} [{row[f'{metric}_low']:.3f}, {row[f'{metric}_high']:.3f}]"

    lines = [f"# Results: {run_name}", "", profile_banner(config), "",
             "The paper reports (its own models, data and metric settings, not reproduced here): best BLEU 0.090 "
             "(TinyLlama-1.1B), ROUGE-1 0.429 (Phi-2), BERTScore above 0.88. The numbers below come from "
             + " and ".join(f"`{m.model_id}`" for m in config.models) + " on this profile's data; BERTScore here uses "
             f"`{config.metrics.bertscore_model}` (layer {config.metrics.bertscore_num_layers}, rescaling "
             f"{'on' if config.metrics.bertscore_rescale else 'off'}), so its scale is not the paper's.", "",
             "## Text metrics (mean and 95 % persona-bootstrap interval)", ""]
    for _, row in text.iterrows():
        lines.append(f"- `{row.variant}` (n={row.n}, {row.personas} personas): BLEU (NLTK, 0-1) {interval(row, 'bleu_nltk')}, "
                     f"sacreBLEU {row.sacrebleu_corpus:.2f}, ROUGE-1 {interval(row, 'rouge1')}, "
                     f"ROUGE-L {interval(row, 'rougeL')}, BERTScore F1 {interval(row, 'bertscore_f1')}")
    lines += ["", "## What this shows", ""] + findings(text, closed, paired)
    lines += ["", "## Paired differences", ""]
    for _, row in paired[paired.metric.isin(["bleu_nltk", "rouge1", "bertscore_f1"])].iterrows():
        if row.personas < MIN_PERSONAS_FOR_INTERVALS:
            verdict = f"only {row.personas} test personas: too few to say anything"
        elif row.low > 0 or row.high < 0:
            verdict = "interval excludes 0"
        else:
            verdict = "interval includes 0: no evidence of a difference"
        lines.append(f"- {row.comparison}, {row.metric}: {row.difference:+.3f} [{row.low:+.3f}, {row.high:+.3f}] "
                     f"({verdict})")
    fidelity = tables.get("persona_fidelity")
    if fidelity is not None and len(fidelity):
        lines += ["", "## Persona fidelity of open answers", "",
                  "Cosine similarity (MiniLM embeddings) of each answer with its own persona card minus with "
                  "another persona's card; above 0 means answers carry something of their persona.", ""]
        for _, row in fidelity.iterrows():
            lines.append(f"- `{row.variant}`: gap {interval(row, 'fidelity_gap')}")
    survey = config.survey.title
    lines += ["", f"## Closed questions against real {survey} respondents", "",
              closed.to_markdown(index=False, floatfmt=".3f"), "",
              "`agreement_with_respondent`: share of linked closed questions where the answer equals that "
              "respondent's real answer (unparseable counts as disagreement). `distribution_alignment`: "
              f"1 - W1/W1max between the answers given across test personas and all {survey} respondents, mean over "
              "questions; the split-half ceiling is what two random halves of real respondents reach.", "",
              "Ablations: `ablations.md` (notebook 05). Tables: `tables/` (CSV, Markdown, LaTeX). Figures: `figures/`. Metric settings: "
              "`metric_settings.json`. Provenance: `manifest.json`. Per-example scores: `per_example_scores.csv`.",
              ""]
    return "\n".join(lines)
