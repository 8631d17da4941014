"""The results README's panel paragraphs in words: the verdict (first in the README), what the panel is worth in
real respondents, and notebook 06's section; pure functions of the panel tables."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .references import ANCHORS, REFERENCE_VARIANTS
from .verdict import middle_size

STATISTICIAN = "baseline-logistic"  # the same-card statistician the learning curve compares every point with
MARGINAL = "baseline-population"  # the persona-blind population marginal, the curve's other paired reference


def largest_point_sentence(curve: pd.DataFrame | None) -> str | None:
    """From the learning curve's table (`runs.learning_curve`): at its largest point (the best fine-tuned log-loss
    among its runs of that size), does the fine-tuned panel beat the statistician who sees the same card, by how
    much, with the paired interval. Points that try a lever (`levers`: more epochs, another learning rate) are
    explored on this panel, so they are not picked here while the curve has a point without one. None without a
    curve."""
    if curve is None:
        return None
    paired = curve[curve.measure == f"log_loss_minus_{STATISTICIAN}"]
    if "levers" in paired and (paired.levers.fillna("") == "").any():
        paired = paired[paired.levers.fillna("") == ""]
    if paired.empty:
        return None
    largest = paired[paired.training_respondents == paired.training_respondents.max()]
    best = largest.loc[largest.value.idxmin()]
    verdict = "beats" if best.high < 0 else "is worse than" if best.low > 0 else "is level with"
    return (f"At {int(best.training_respondents):,} training respondents the fine-tuned panel (`{best.run}`) "
            f"{verdict} the statistician who sees the same card (`{STATISTICIAN}`, fitted on the same respondents): "
            f"log-loss difference {best.value:+.3f} [{best.low:+.3f}, {best.high:+.3f}] (paired, model minus "
            "statistician; negative favours the model; the learning curve below)." + point_details(curve, best.run))


def point_details(curve: pd.DataFrame, run: str) -> str:
    """` It beats the persona-blind population marginal by ... and its subgroups differ ... as much as the real
    ones (the statistician's: ...).`: the rest of a curve point's verdict, from whichever of its rows the curve
    has (empty when it has neither)."""
    rows = curve[curve.run == run]
    said = []
    marginal = rows[rows.measure == f"log_loss_minus_{MARGINAL}"]
    if len(marginal):
        m = marginal.iloc[0]
        verdict = "beats" if m.high < 0 else "is worse than" if m.low > 0 else "is level with"
        said.append(f"it {verdict} the persona-blind population marginal (`{MARGINAL}`, fitted on the same "
                    f"respondents) by {m.value:+.3f} [{m.low:+.3f}, {m.high:+.3f}] (log-loss, paired)")
    slopes = rows[rows.measure == "subgroup_effect_slope"]
    model, statistician = slopes[slopes.variant.str.endswith("-lora")], slopes[slopes.variant == STATISTICIAN]
    if len(model) and len(statistician):
        m, r = model.iloc[0], statistician.iloc[0]
        said.append(f"its subgroups differ {m.value:.3f} [{m.low:.3f}, {m.high:.3f}] as much as the real ones (the "
                    f"statistician's: {r.value:.3f} [{r.low:.3f}, {r.high:.3f}])")
    if not said:
        return ""
    text = " and ".join(said)
    return f" {text[0].upper()}{text[1:]}."


def versus(row: pd.Series, reference: str) -> str | None:
    """`is worse than `pooled-logistic` by +0.109 [+0.080, +0.138]`: a model row's paired log-loss difference to
    `reference` (`log_loss_minus_<reference>` and its interval) in words; None where the row has none."""
    name = f"log_loss_minus_{reference}"
    if name not in row or not np.isfinite(row[name]):
        return None
    verdict = "beats" if row[f"{name}_hi"] < 0 else "is worse than" if row[f"{name}_lo"] > 0 else "is level with"
    return f"{verdict} `{reference}` by {bracket(row, name, signed=True)}"


def new_items_sentence(table: pd.DataFrame | None, scored: int, folds: int, pointer: str = " (New questions, below)"
                       ) -> str | None:
    """From `panel_new_items` (notebook 08; its first point): on survey items held out of training, does the
    fine-tuned panel beat the references that never saw those items' answers, and does it get the direction of
    subgroup differences right; `scored` of `folds` fold runs. None without the table or a fine-tuned row."""
    if table is None:
        return None
    from .new_items import COMPARED

    lora = table[table.variant.str.endswith("-lora")]
    if lora.empty:
        return None
    row = lora.iloc[0]
    said = [phrase for phrase in (versus(row, reference) for reference in COMPARED) if phrase]
    share = f"all {folds} folds" if scored == folds else f"{scored} of {folds} folds scored so far"
    return (f"On new questions (survey items held out of its training; {share}) the fine-tuned panel "
            f"(`{row.point}`) {' and '.join(said)} (log-loss, paired, model minus reference); its subgroup-effect "
            f"correlation there is {bracket(row, 'subgroup_effect_correlation', signed=True)}, its slope "
            f"{bracket(row, 'subgroup_effect_slope')}{pointer}.")


def verdict_section(tables: dict[str, pd.DataFrame], respondents: int, costs: dict | None = None,
                    curve_figure: bool = False, curve: pd.DataFrame | None = None,
                    new_items: str | None = None) -> str:
    """The results README's first section: where the profile has a learning curve (its table, `curve`), what its
    largest point says against the same-card statistician (`largest_point_sentence`); then the main run's verdict
    table (`panel_verdict`, `verdict_table`), at most three sentences each with one finding (`verdict_findings`),
    the headline figure (and the learning curve's), then, under their own headings, each model against each
    reference in words, the model families and what the panel is worth. `new_items`: the sentence on new
    questions (`new_items_sentence`), after the curve's."""
    verdict = tables["panel_verdict"]
    leads = [sentence for sentence in (largest_point_sentence(curve), new_items) if sentence]
    parts = ["## Verdict", "", *[line for sentence in leads for line in (sentence, "")],
             *(["The main run:", ""] if leads else []),
             verdict_table(verdict, respondents), "",
             " ".join(verdict_findings(verdict, tables.get("panel_worth"))), "",
             "![Each variant minus the population marginal and minus the same-card statistician: paired log-loss "
             "differences](figures/panel_verdict.png)", ""]
    if curve_figure:
        parts += ["![The panel against the number of real respondents trained on](figures/learning_curve.png)", ""]
    parts += ["### Each model against each reference", "", " ".join(reference_sentences(tables))]
    if "panel_models" in tables and len(tables["panel_models"]):
        parts += ["", "### Model families", "", family_sentences(tables["panel_models"], costs or {})]
    if "panel_worth" in tables:
        parts += ["", "### What the panel is worth in real respondents", "",
                  worth_sentences(tables["panel_worth"], respondents), "",
                  "![What the panel is worth: coverage and effective sample size](figures/panel_worth.png)"]
    parts += ["", "![Per item and party group, real answers against every variant](figures/panel_by_party.png)"]
    return "\n".join(parts) + "\n"


def bracket(row, name: str, signed: bool = False, digits: int = 3) -> str:
    """`0.898 [0.860, 0.936]` (or signed: `+0.024 [+0.011, +0.038]`) from columns name, name_lo, name_hi."""
    value, low, high = row[name], row[f"{name}_lo"], row[f"{name}_hi"]
    if pd.isna(value):
        return "-"
    f = f"{{:{'+' if signed else ''}.{digits}f}}"
    return f"{f.format(value)} [{f.format(low)}, {f.format(high)}]"


def verdict_table(verdict: pd.DataFrame, respondents: int) -> str:
    """`panel_verdict` as the README's first table, one row per variant and reference, best log-loss first."""
    worth = "worth_per_100" in verdict
    against = [name for name in ("marginal", "statistician") if f"vs_{name}" in verdict]
    titles = {"marginal": "minus population marginal", "statistician": "minus same-card statistician"}
    head = (["variant", "kind", "base", "log-loss"] + [titles[name] for name in against] + ["subgroup-effect slope"]
            + ([f"worth per 100 (n = {int(verdict.worth_n.dropna().iloc[0])})"] if worth else []))
    lines = [f"On {respondents} held-out real respondents (every row scored on the same respondent-item pairs; "
             "log-loss in nats a pair, lower is better; differences paired on the same respondent-bootstrap draws, "
             "negative is better; slope 1 would match the real subgroup differences):", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, row in verdict.iterrows():
        cells = [f"`{row.variant}`", row.kind, row.base if "base" in row else "-", bracket(row, "log_loss")]
        cells += ["itself" if row[f"vs_{name}_ci_method"] == "constant" and row[f"vs_{name}"] == 0
                  else bracket(row, f"vs_{name}", signed=True) for name in against]
        cells += [bracket(row, "slope")]
        cells += [f"{row.worth_per_100:.1f} [{row.worth_lo:.1f}, {row.worth_hi:.1f}]"
                  if pd.notna(row.get("worth_per_100")) else "-"] if worth else []
        lines.append("| " + " | ".join(cells) + " |")
    notes = ("Base: the weights a model variant is evaluated on (`tables/panel_verdict`: NF4 is QLoRA's 4-bit base, "
             "the embedded GGUF quantised again). Intervals: log-loss, persona bootstrap; differences and slope, BCa on the same draws (`tables/"
             "panel_verdict`, `panel_effects`: the method of each interval)")
    if worth:
        notes += ("; worth: the prediction-powered estimate's effective sample size per 100 real respondents "
                  "sampled, mean over the seeded samples with its Monte Carlo interval (`tables/panel_worth`)")
    return "\n".join(lines + ["", notes + "."])


def compared(row, name: str) -> str:
    """`better than` / `worse than` / `not told apart from` by the paired interval of `vs_<name>`."""
    if row[f"vs_{name}_hi"] < 0:
        return "better than"
    if row[f"vs_{name}_lo"] > 0:
        return "worse than"
    return "not told apart from"


def verdict_findings(verdict: pd.DataFrame, worth: pd.DataFrame | None = None) -> list[str]:
    """At most three sentences, each one finding with its number: the best model against the marginal and the
    statistician; its subgroup differences against theirs; what it is worth beside a real sample, and the shuffled
    control (`worth`: `panel_worth`, where measured)."""
    models = verdict[verdict.kind == "model"]
    if models.empty:
        return []
    best = models.iloc[0]  # the table is ordered by log-loss
    rows = verdict.set_index("variant")
    said = [f"`{best.variant}`, the best model variant, predicts the held-out answers"]
    for name, words in (("marginal", "the persona-blind population marginal"),
                        ("statistician", "the statistician on the same card (`baseline-logistic`)")):
        if f"vs_{name}" in verdict:
            said.append(f"{compared(best, name)} {words} ({bracket(best, f'vs_{name}', signed=True)} nats a pair)")
    findings = [said[0] + " " + " and ".join(said[1:]) + "." if len(said) > 1 else said[0] + "."]
    slope = f"Its subgroups differ {best.slope:.3f} [{best.slope_lo:.3f}, {best.slope_hi:.3f}] as much as the real ones"
    if "baseline-logistic" in rows.index:
        slope += f" (the same-card statistician's: {bracket(rows.loc['baseline-logistic'], 'slope')})"
    top = verdict.iloc[0]
    findings.append(slope + f"; the best row overall is `{top.variant}` (log-loss {top.log_loss:.3f}, slope "
                    f"{top.slope:.3f}).")
    if "worth_per_100" in verdict and pd.notna(best.get("worth_per_100")):
        n = int(best.worth_n)
        statistician = (f", the statistician {rows.loc['baseline-logistic', 'worth_per_100']:.1f}"
                        if "baseline-logistic" in rows.index and pd.notna(rows.loc["baseline-logistic",
                                                                                    "worth_per_100"]) else "")
        control = worth[(worth.n == n) & (worth.estimator == "ppi") & worth.predictor.str.startswith("shuffled-")] \
            if worth is not None else pd.DataFrame()
        floor = (f", and a control related to no answer (`{control.predictor.iloc[0]}`) "
                 f"{control.worth_per_100.iloc[0]:.1f}" if len(control) else "")
        findings.append(f"Beside a random sample of {n} real respondents it is worth {best.worth_per_100:.1f} real "
                        f"respondents per 100 (prediction-powered estimates of the answer shares){statistician}"
                        f"{floor}.")
    return findings


def reference_sentences(tables: dict[str, pd.DataFrame]) -> list[str]:
    """Each model against the persona-blind marginal, the best reference fitted on the same respondents and the
    best anchor, by paired differences (model minus reference, on the same respondent-bootstrap draws)."""
    individual = tables["panel_individual"].set_index("variant")
    effects = tables["panel_effects"].set_index("variant")
    paired = tables["panel_paired"]

    def against(rows, reference: str) -> str:
        row = rows.loc[reference]
        return (f"{row.difference:+.3f} [{row.difference_lo:+.3f}, {row.difference_hi:+.3f}] against "
                f"`{reference}`")

    same_data = [v for v in REFERENCE_VARIANTS if v in individual.index]
    anchors = [v for v in ANCHORS if v in individual.index]
    sentences = []
    for model in dict.fromkeys(paired.variant):
        rows = paired[paired.variant == model]
        loss = rows[rows.measure == "log_loss"].set_index("reference")
        slope = rows[rows.measure == "subgroup_effect_slope"].set_index("reference")
        compared_with = ["baseline-population", min(same_data, key=lambda v: individual.loc[v, "log_loss"])]
        compared_with += [min(anchors, key=lambda v: individual.loc[v, "log_loss"])] if anchors else []
        strongest = max(same_data, key=lambda v: effects.loc[v, "slope"])
        sentences.append(f"`{model}`: log-loss {individual.loc[model, 'log_loss']:.3f}, "
                         + ", ".join(against(loss, r) for r in dict.fromkeys(compared_with))
                         + f"; subgroup-effect slope {effects.loc[model, 'slope']:.3f}, "
                         + against(slope, strongest) + " (paired differences, model minus reference).")
    return sentences


HIGHER_IS_BETTER = {"log_loss": False}  # every other measure of `panel_models`: higher is better


def family_sentences(models: pd.DataFrame, costs: dict[str, dict[str, float]]) -> str:
    """The verdict's paragraph on model families: per pair of variants (`panel_models`), which is better on each
    measure, by the paired difference's interval; then what each family cost on this machine."""
    sentences = []
    for (variant, reference), rows in models.groupby(["variant", "reference"], sort=False):
        said = []
        for row in rows.itertuples():
            if row.difference_lo > 0 or row.difference_hi < 0:
                lower = row.difference_hi < 0
                better = variant if lower != HIGHER_IS_BETTER.get(row.measure, True) else reference
                verdict = f"`{better}` better"
            else:
                verdict = "not told apart"
            said.append(f"{row.measure.replace('_', ' ')} {row.difference:+.3f} [{row.difference_lo:+.3f}, "
                        f"{row.difference_hi:+.3f}] ({verdict})")
        sentences.append(f"`{variant}` minus `{reference}`: " + "; ".join(said) + ".")
    cost = [f"`{family}` " + " and ".join(
        ([f"{c['train_s_per_record']:.2f} s per training record"] if "train_s_per_record" in c else [])
        + ([f"{c['score_s_per_pair']:.3f} s per panel pair scored"] if "score_s_per_pair" in c else []))
        for family, c in costs.items() if c]
    return ("(`tables/panel_models`: paired differences on the same respondent-bootstrap draws; "
            "log-loss lower is better, subgroup-effect slope and stacking gain higher): " + " ".join(sentences)
            + (" Cost on this machine (notebook 02's training and notebook 06's scoring of the fine-tuned model, "
               "from this run): " + "; ".join(cost) + "." if cost else ""))


def worth_sentences(worth: pd.DataFrame, respondents: int) -> str:
    """The verdict's second paragraph: what each predictor is worth in real respondents at the middle sample size."""
    n = middle_size(worth)
    at = worth[worth.n == n].set_index(["predictor", "estimator"])
    predictors = list(dict.fromkeys(worth.predictor))
    ppi = [f"`{p}` {at.loc[(p, 'ppi'), 'effective_n']:.1f}" + (" (the control: related to no answer)"
                                                                  if p.startswith("shuffled-") else "")
           for p in predictors]
    coverage = at.xs("ppi", level="estimator").coverage
    synthetic = [f"`{p}` covers {at.loc[(p, 'synthetic'), 'coverage']:.1%}, mean bias "
                 f"{100 * at.loc[(p, 'synthetic'), 'bias']:.1f} points" for p in predictors
                 if not p.startswith("shuffled-")]
    classical = at.loc[(predictors[0], "classical")]
    return (f"(`tables/panel_worth`, `figures/panel_worth`): given "
            f"the real answers of a random {n} of the {respondents} and a predictor's probabilities for every card, "
            f"prediction-powered (PPI++) estimates of the answer shares, overall and in subgroups "
            f"({int(classical.estimands)} estimands), are as precise as a classical sample of: " + ", ".join(ppi)
            + f" real respondents; their intervals cover the true share {coverage.min():.1%} to {coverage.max():.1%} "
            f"of the time, the classical sample's {classical.coverage:.1%} (nominal 95 %). "
            "Used alone, without real answers, the synthetic panel's intervals: " + "; ".join(synthetic) + ".")


def interval(row, name: str) -> str:
    return f"{row[name]:.3f} [{row[name + '_lo']:.3f}, {row[name + '_hi']:.3f}]"


NUMBER_WORDS = {2: "two", 3: "three", 4: "four", 5: "five"}


def panel_section(config, tables: dict[str, pd.DataFrame], respondents: int, training: int, survey_title: str,
                  option_counts: list[int]) -> str:
    """The results README's panel section: each model variant against each reference, in words."""
    alignment = tables["panel_alignment"]
    overall = alignment[alignment.variable == "all"].set_index("variant")
    by_party = alignment[alignment.variable == "party"]
    individual = tables["panel_individual"].set_index("variant")
    effects = tables["panel_effects"].set_index("variant")
    lines = ["## The synthetic panel against held-out real respondents (notebook 06)", "",
             f"{respondents} real {survey_title} respondents who are in no split of this dataset, each asked every "
             f"linked item they answered; every variant's probability of each option (option log-likelihoods, averaged "
             f"over the given and the reversed option order) against their real answers. References fitted on the "
             f"{training} training respondents only (`baseline-logistic` and `baseline-boosting` see every field of "
             "the card, tuned by cross-validation on those respondents); the `anchor-*` rows are the same two "
             "methods fitted on every eligible respondent outside the panel. Tables: `tables/panel_*`; figures: "
             "`figures/panel_*`.", "",
             "| variant | alignment (all) | party: mean alignment | log-loss | accuracy | subgroup-effect correlation "
             "| subgroup-effect slope |", "|---|---|---|---|---|---|---|"]
    for variant in list(overall.index):
        party = by_party[by_party.variant == variant].alignment.mean()
        ind = individual.loc[variant] if variant in individual.index else None
        eff = effects.loc[variant] if variant in effects.index else None
        lines.append(f"| `{variant}` | {interval(overall.loc[variant], 'alignment')} | {party:.3f} | "
                     + (f"{interval(ind, 'log_loss')} | {interval(ind, 'accuracy')} | " if ind is not None else "- | - | ")
                     + (f"{interval(eff, 'correlation')} | {interval(eff, 'slope')} |" if eff is not None
                        else "- | - |"))
    lines += [""]
    paired = tables["panel_paired"]
    for _, row in paired.iterrows():
        better = "lower" if row.measure == "log_loss" else "higher"
        word = (("better" if (row.difference_hi < 0) == (better == "lower") else "worse")
                if row.difference_lo > 0 or row.difference_hi < 0 else "not told apart")
        lines.append(f"- `{row.variant}` against `{row.reference}` on {row.measure.replace('_', ' ')}: {word} "
                     f"(difference {row.difference:+.3f} [{row.difference_lo:+.3f}, {row.difference_hi:+.3f}], "
                     f"paired on the same respondent-bootstrap draws; {better} is better).")
    subpop = tables["panel_subpop_units"].set_index("variant").wasserstein_per_option_gap
    stacking = tables["panel_stacking"]
    lines += ["", "In SubPOP's units (mean over subgroup x item cells of W1 / (options - 1); SubPOP's held-out GSS "
              "2022 figures: fine-tuned 7B 0.121, uniform 0.208, human floor 0.033): "
              + ", ".join(f"`{v}` {x:.3f}" for v, x in subpop.items()) + " (`tables/panel_subpop_units`)."]
    for _, row in stacking.iterrows():
        lines.append(f"- Stacking `{row.variant}` on `{row.card_regression}` (cross-fitted on the panel, "
                     f"`tables/panel_stacking`): log-loss {row.log_loss_without:.3f} without the model, "
                     f"{row.log_loss_with:.3f} with it, gain {row.gain:+.3f} [{row.gain_lo:+.3f}, {row.gain_hi:+.3f}].")
    sizes = sorted(set(option_counts))
    uniform = (f"ln {sizes[0]} = {math.log(sizes[0]):.3f} on these {NUMBER_WORDS.get(sizes[0], sizes[0])}-option items"
               if len(sizes) == 1 else f"{np.mean(np.log(option_counts)):.3f} on these items (mean of ln options)")
    lines += ["", f"A uniform guess has log-loss {uniform}. `1 - W1/W1max` is close to 1 "
              "for any sensible distribution; the subgroup-effect correlation (how a subgroup's mean answer differs "
              "from the whole panel's, synthetic against real, over item x subgroup cells) is what says whether the "
              "persona carries.", ""]
    return "\n".join(lines)
