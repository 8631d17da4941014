"""The demographic variables of a persona card that tables and figures group by (age band, sex, education, party,
work status), for the panel and for all the survey's respondents alike."""
from __future__ import annotations

import pandas as pd

SUBGROUPS = ("age_band", "gender", "education", "party")  # the subgroups answers are compared within
CARD_SUBGROUPS = SUBGROUPS + ("ideology",)  # the panel's subgroups read off every card
DEMOGRAPHICS = SUBGROUPS + ("occupation",)  # the persona panel against the survey (work status)


def age_band(age: int) -> str:
    if not age:
        return "not stated"
    return "18-29" if age < 30 else "30-44" if age < 45 else "45-64" if age < 65 else "65+"


def demographic_frame(cards: list[dict]) -> pd.DataFrame:
    """One row per persona card with the comparison variables (party = political identity before the comma,
    ideology = after it)."""
    return pd.DataFrame({
        "age_band": [age_band(c["age"]) for c in cards],
        "gender": [c["gender"] for c in cards],
        "education": [c["education"] for c in cards],
        "party": [c["political_identity"].split(",")[0] for c in cards],
        "ideology": [c["political_identity"].split(", ", 1)[-1] for c in cards],
        "occupation": [c["occupation"] for c in cards],
    })


def demographics_comparison(panel_cards: list[dict], survey) -> pd.DataFrame:
    """Share of each category in the persona panel against all the survey's eligible respondents (percent)."""
    panel, gss = demographic_frame(panel_cards), demographic_frame(list(survey.cards()))
    rows = []
    for variable in DEMOGRAPHICS:
        p = panel[variable].value_counts(normalize=True) * 100
        g = gss[variable].value_counts(normalize=True) * 100
        for category in sorted(set(p.index) | set(g.index)):
            rows.append({"variable": variable, "category": category,
                         "panel_pct": round(float(p.get(category, 0.0)), 1),
                         "survey_pct": round(float(g.get(category, 0.0)), 1)})
    return pd.DataFrame(rows)
