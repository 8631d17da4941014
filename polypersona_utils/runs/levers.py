"""Which levers helped: every learning-curve point that changes one setting of an earlier point at the same number of
respondents (LoRA on every layer instead of the top 8, three epochs instead of one, the option-likelihood objective,
another model), its fine-tuned panel minus the earlier point's on the same held-out respondents and the same
bootstrap draws (`panel.paired`), on log-loss and subgroup-effect slope. Pure functions of the points' stored
distributions; `runs.learning_curve` writes the table and the README's sentence.
"""
from __future__ import annotations

import pandas as pd

from ..panel.measures import population_effects, with_answer_columns
from ..panel.paired import paired_rows, variant_statistics

TABLE = "learning_curve_levers"
FIELDS = {  # a point's setting -> how the README names it
    "model": "model", "objective": "objective", "top_layers": "adapted layers", "quantization": "base",
    "epochs": "epochs", "learning_rate": "learning rate"}
COLUMNS = ["lever", "respondents", "point", "against", "measure", "difference", "difference_lo", "difference_hi",
           "ci_method"]


def setting(point, field: str, defaults: dict):
    """A point's value of `field`, a default filled in (`model`, `learning_rate`), as the README writes it."""
    value = getattr(point, field)
    if value is None and field in defaults:
        value = defaults[field]
    if field == "top_layers":
        return "all" if value is None else f"top {value}"
    if field == "quantization":
        return "fp32" if value == "none" else value
    return f"{value:g}" if isinstance(value, float) else str(value)


def lever_pairs(points: list[tuple[object, str]], defaults: dict) -> list[tuple[str, str, str]]:
    """(point, the earlier point it changes, the lever in words) for every two of the curve's (point, run name) at
    the same respondents that differ in exactly one setting of `FIELDS`; the later point in the profile's order is
    the lever. `defaults`: `model` and `learning_rate` for points that leave them unset."""
    pairs = []
    for j, (point, name) in enumerate(points):
        for earlier, base in points[:j]:
            if earlier.respondents != point.respondents:
                continue
            changed = [f for f in FIELDS if setting(earlier, f, defaults) != setting(point, f, defaults)]
            if len(changed) == 1:
                field = changed[0]
                pairs.append((name, base, f"{FIELDS[field]}: {setting(earlier, field, defaults)} to "
                                          f"{setting(point, field, defaults)}"))
    return pairs


def lever_table(pairs: list[tuple[str, str, str]], respondents: dict[str, int], distributions: dict[str, pd.DataFrame],
                population: pd.DataFrame | None, samples: int, seed: int, least: int, variables: tuple[str, ...]
                ) -> pd.DataFrame:
    """One row per lever and measure: the point's fine-tuned variant minus the earlier point's, paired on the same
    respondents and bootstrap draws, BCa intervals (`COLUMNS`). `distributions`: run name -> its stored panel
    distributions (`panel.report.read_distributions`); both points of a pair must score the same respondents."""
    if not pairs:
        return pd.DataFrame(columns=COLUMNS)
    real_effects = population_effects(with_answer_columns(population), variables)
    rows = []
    for point, against, lever in pairs:
        frame = pd.concat([fine_tuned(distributions[name], name) for name in (point, against)], ignore_index=True)
        people = {p: i for i, p in enumerate(sorted(frame.persona_id.unique()))}
        statistics = variant_statistics(with_answer_columns(frame), [point, against], people, least, variables,
                                        real_effects)
        paired = paired_rows(statistics, [(point, against, m) for m in ("log_loss", "subgroup_effect_slope")],
                             people, samples, seed)
        rows += [{"lever": lever, "respondents": respondents[point], "point": point, "against": against,
                  "measure": r["measure"], **{c: r[c] for c in COLUMNS[5:]}} for r in paired.to_dict("records")]
    return pd.DataFrame(rows, columns=COLUMNS)


def fine_tuned(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    """A run's fine-tuned variant's rows, the variant named by the run."""
    lora = frame[frame.variant.str.endswith("-lora")]
    if lora.variant.nunique() != 1:
        raise ValueError(f"{name}: expected one fine-tuned variant in its panel distributions, found "
                         f"{sorted(lora.variant.unique())}")
    return lora.assign(variant=name)


def outcome(low: float, high: float, lower_is_better: bool) -> str:
    """A paired difference's interval in words: `better` or `worse` for the lever where it excludes zero, else
    `level`."""
    if high < 0:
        return "better" if lower_is_better else "worse"
    if low > 0:
        return "worse" if lower_is_better else "better"
    return "level"


def lever_sentence(table: pd.DataFrame) -> str | None:
    """The README's words: each lever, at its size, with its paired differences and which way each points."""
    if table.empty:
        return None
    parts = []
    for _, part in table.groupby(["point", "against"], sort=False):
        by = part.set_index("measure")
        loss, slope = by.loc["log_loss"], by.loc["subgroup_effect_slope"]
        parts.append(f"{loss.lever} at {loss.respondents:,} respondents (`{loss.point}` against `{loss.against}`): log-loss "
                     f"{loss.difference:+.3f} [{loss.difference_lo:+.3f}, {loss.difference_hi:+.3f}] "
                     f"({outcome(loss.difference_lo, loss.difference_hi, True)}), slope "
                     f"{slope.difference:+.3f} [{slope.difference_lo:+.3f}, {slope.difference_hi:+.3f}] "
                     f"({outcome(slope.difference_lo, slope.difference_hi, False)})")
    return ("Levers, each point against the earlier point it changes in one setting (the fine-tuned panels paired on "
            "the same respondents and bootstrap draws; `better`: the interval excludes zero in the lever's favour, "
            "`level`: it holds zero; table `tables/learning_curve_levers.*`): " + "; ".join(parts) + ".")
