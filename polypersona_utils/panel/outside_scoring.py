"""Any model's synthetic panel scored on the held-out respondents, beside the study's variants (`make score-panel`),
from the committed results alone: no model is loaded and nothing is rebuilt.

    make panel-template PROFILE=default OUT=panel_template.csv     # the cards and questions to answer
    make score-panel PROFILE=default PREDICTIONS=my_panel.csv NAME=my-model

The predictions file is panel-format (`panel.files`: CSV, JSON or JSONL with `persona_id`, `question_id`,
`options`, `probabilities`): every (respondent, item) pair of `results/<profile>/panel_distributions.csv` exactly
once, the options as the bank orders them, probabilities summing to 1 within 1e-6 (or the rounding of K
probabilities written to 6 decimals). Any other file is refused with
the line and the field, and nothing is written. Every panel table (notebook 06's, `panel.report.compute_panel_tables`)
is computed for NAME beside the committed variants and written to `results/<profile>/scored-panels/<NAME>/`:
`tables/`, `figures/`, a README with the verdict, and a provenance record.
"""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from ..provenance import atomic_write_json, atomic_write_text, provenance_record, sha256_file
from ..reporting.tables import write_table
from ..study import StudyRun
from ..user_files import UserFileError
from .figures import panel_figures
from .files import read_panel_file
from .readme import verdict_section
from .references import ANCHORS, REFERENCE_VARIANTS
from .report import DISTRIBUTIONS_FILE, compute_panel_tables, panel_settings, read_distributions

SUM_TOLERANCE = 1e-6
TEMPLATE_COLUMNS = ("persona_id", "question_id", "card", "question", "options", "probabilities")


def stored_panel(config) -> pd.DataFrame:
    """The committed distributions of the profile's main run (every variant)."""
    stored = config.paths().results / DISTRIBUTIONS_FILE
    if not stored.exists():
        raise UserFileError(f"{stored}: no stored panel for profile '{config.profile}' (run make panel first)")
    return read_distributions(stored)


def panel_template(config) -> pd.DataFrame:
    """The panel's pairs to answer: each respondent's card (JSON) and each question's text and options, with an
    empty `probabilities` column to fill in (the options' order is the bank's, and stays so)."""
    stored = stored_panel(config)
    pairs = stored[stored.variant == stored.variant.iloc[0]]
    cards = {r.persona_id: r.card for r in StudyRun(config).eligible}
    questions = config.bank.by_id()
    return pd.DataFrame({"persona_id": pairs.persona_id, "question_id": pairs.question_id,
                         "card": [json.dumps({k: v for k, v in cards[p].items() if k != "description"},
                                             ensure_ascii=False) for p in pairs.persona_id],
                         "question": [questions[q].text for q in pairs.question_id],
                         "options": pairs.options.map("|".join), "probabilities": ""})


def checked_frame(stored: pd.DataFrame, predictions: pd.DataFrame, path: Path, name: str) -> pd.DataFrame:
    """The user's rows as a variant of the panel frame (the stored rows' real answers and subgroups), after checking
    that they cover every stored pair once with the bank's options."""
    reference = stored[stored.variant == stored.variant.iloc[0]].set_index(["persona_id", "question_id"])
    for row in predictions.itertuples(index=False):
        pair = (row.persona_id, row.question_id)
        if pair not in reference.index:
            raise UserFileError(f"{path}: line {row.line}: fields 'persona_id', 'question_id': {pair} is not a pair "
                                "of the profile's panel")
        expected = tuple(reference.loc[pair, "options"])
        if tuple(row.options) != expected:
            raise UserFileError(f"{path}: line {row.line}: field 'options': {list(row.options)} is not the bank's "
                                f"{list(expected)} (same texts, same order)")
    given = set(zip(predictions.persona_id, predictions.question_id))
    missing = [pair for pair in reference.index if pair not in given]
    if missing:
        raise UserFileError(f"{path}: {len(missing)} pair(s) of the panel have no row, e.g. {missing[0]}")
    by_pair = dict(zip(zip(predictions.persona_id, predictions.question_id), predictions.probabilities))
    frame = reference.reset_index()
    frame["variant"] = name
    frame["probabilities"] = [by_pair[p, q] for p, q in zip(frame.persona_id, frame.question_id)]
    return frame


def score_panel_file(config, path: Path, name: str) -> dict[str, pd.DataFrame]:
    """Every panel table for `name`'s probabilities beside the committed variants, written under
    `results/<profile>/scored-panels/<name>/`."""
    stored = stored_panel(config)
    if not name or not name[0].isalnum() or not all(c.isalnum() or c in "-_." for c in name) \
            or name in set(stored.variant) \
            or name in REFERENCE_VARIANTS or name in ANCHORS or name.startswith("shuffled-"):
        raise UserFileError(f"NAME={name!r}: a letter or digit, then letters, digits, '-', '_' or '.', and not a "
                            "name the study uses "
                            f"({', '.join(dict.fromkeys(stored.variant))})")
    frame = checked_frame(stored, read_panel_file(path, SUM_TOLERANCE), path, name)
    tables = compute_panel_tables(StudyRun(config), pd.concat([stored, frame], ignore_index=True))
    out = config.paths().results / "scored-panels" / name
    for table_name, table in tables.items():
        write_table(table, out / "tables" / table_name, caption=f"{table_name.replace('_', ' ')} ({name})")
    respondents = stored.persona_id.nunique()
    panel_figures(pd.concat([stored, frame], ignore_index=True), tables, out / "figures", name,
                  config.survey.label_order(), config.panel.min_cell_respondents)  # the figures its README shows
    atomic_write_text(out / "README.md", f"# `{name}` on the held-out panel of `{config.profile}`\n\n"
                      f"Scored from `{Path(path).name}` beside the study's committed variants "
                      "(`make score-panel`); tables in `tables/`.\n\n" + verdict_section(tables, respondents))
    atomic_write_json(out / "provenance.json", provenance_record(
        config.to_dict(), asdict(config.seeds), {"predictions": sha256_file(path)}, step="score-panel", variant=name,
        settings=panel_settings(config)))
    return tables
