"""The dataset's splits: persona-disjoint assignment, the leakage checks (the released files' own splits pass with
the overlaps they were released with, counted by `given_split_overlaps`), the files written (JSONL and a
`datasets` DatasetDict) and their counts, a split read back as a run sees it (`load_split`), and the persona ids
a dataset holds (`dataset_persona_ids`) or trains on as real respondents (`training_respondent_ids`)."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np

from .. import paths
from ..provenance import read_jsonl, write_jsonl
from .records import survey_training_records
from .respondents import held_out_panel, survey_respondents, survey_training_respondents

SPLITS = ("train", "val", "test")
# The persona ids of the training respondents (`real_answers`), written beside the splits.
TRAINING_RESPONDENTS_FILE = "training_respondents.json"


class LeakageError(AssertionError):
    """Splits the study made share a persona (when persona-disjoint) or a (persona, question) pair, or an id
    repeats."""


def training_respondent_ids(data_dir: Path) -> set[str]:
    """The training respondents of a built dataset (empty for datasets built without them)."""
    path = Path(data_dir) / TRAINING_RESPONDENTS_FILE
    return set(json.loads(path.read_text())) if path.exists() else set()


def split_personas(persona_ids: list[str], fractions: tuple[float, float, float], seed: int) -> dict[str, str]:
    """persona_id -> split. Personas are shuffled with `seed` and cut by the fractions."""
    ids = sorted(set(persona_ids))
    order = [ids[i] for i in np.random.default_rng(seed).permutation(len(ids))]
    n_val = int(round(fractions[1] * len(ids)))
    n_test = int(round(fractions[2] * len(ids)))
    if len(ids) >= 3:  # tiny panels still get a non-empty val and test split when asked for one
        n_val, n_test = max(n_val, fractions[1] > 0), max(n_test, fractions[2] > 0)
    n_train = len(ids) - n_val - n_test
    bounds = {"train": order[:n_train], "val": order[n_train:n_train + n_val], "test": order[n_train + n_val:]}
    return {pid: split for split, pids in bounds.items() for pid in pids}


def split_records(records: list[dict], fractions: tuple[float, float, float], seed: int,
                  persona_disjoint: bool = True) -> dict[str, list[dict]]:
    if persona_disjoint:
        assignment = split_personas([r["persona_id"] for r in records], fractions, seed)
        key_of = lambda r: assignment[r["persona_id"]]  # noqa: E731
    else:
        assignment = split_personas([r["id"] for r in records], fractions, seed)
        key_of = lambda r: assignment[r["id"]]  # noqa: E731
    splits = {name: [] for name in SPLITS}
    for record in sorted(records, key=lambda r: r["id"]):
        splits[key_of(record)].append(record)
    return splits


def check_leakage(splits: dict[str, list[dict]], persona_disjoint: bool = True) -> None:
    """Raise LeakageError if a record id repeats, a (persona, question) pair repeats, or (when persona-disjoint) a
    persona is in two splits. Records kept in the split their file gave them (`given_split`: imported with
    `references.import_path` by split, the released files' own splits) may share personas and pairs with each
    other: the release made those overlaps, and the dataset card counts them (`given_split_overlaps`). A pair or
    persona that a record the study placed takes part in is still leakage."""
    given: dict[tuple, list[bool]] = {}
    for name, rows in splits.items():
        for r in rows:
            given.setdefault((r["persona_id"], r["question"]), []).append(r.get("given_split") == name)
    repeated = [pair for pair, kept in given.items() if len(kept) > 1 and not all(kept)]
    if repeated:
        raise LeakageError(f"(persona, question) pair occurs {len(given[repeated[0]])} times: {repeated[0]}")
    ids = Counter(r["id"] for rows in splits.values() for r in rows)
    if max(ids.values(), default=1) > 1:
        raise LeakageError(f"record id repeated: {ids.most_common(1)[0][0]}")
    if persona_disjoint:
        owners: dict[str, set[str]] = {}
        as_given: dict[str, bool] = {}
        for name, rows in splits.items():
            for r in rows:
                owners.setdefault(r["persona_id"], set()).add(name)
                as_given[r["persona_id"]] = as_given.get(r["persona_id"], True) and r.get("given_split") == name
        shared = sorted(pid for pid, names in owners.items() if len(names) > 1 and not as_given[pid])
        if shared:
            raise LeakageError(f"persona {shared[0]} is in splits {sorted(owners[shared[0]])}")


def given_split_overlaps(splits: dict[str, list[dict]]) -> list[dict]:
    """What given splits share, as the dataset card shows it: one row per pair of splits that share personas
    (`where`: "val & test"; `personas` in both, (persona, question) `pairs` in both, `records` of both splits with
    those pairs) and one per split that asks a persona the same question more than once (`where`: "within test";
    `personas` so asked, `pairs` asked more than once, `records` with those pairs). Empty when nothing is shared."""
    personas = {name: Counter(r["persona_id"] for r in splits.get(name, [])) for name in SPLITS}
    pairs = {name: Counter((r["persona_id"], r["question"]) for r in splits.get(name, [])) for name in SPLITS}
    rows = []
    for i, first in enumerate(SPLITS):
        for second in SPLITS[i + 1:]:
            both = set(personas[first]) & set(personas[second])
            shared = set(pairs[first]) & set(pairs[second])
            if both:
                rows.append({"where": f"{first} & {second}", "personas": len(both), "pairs": len(shared),
                             "records": sum(pairs[first][p] + pairs[second][p] for p in shared)})
    for name in SPLITS:
        again = {p: n for p, n in pairs[name].items() if n > 1}
        if again:
            rows.append({"where": f"within {name}", "personas": len({pid for pid, _ in again}),
                         "pairs": len(again), "records": sum(again.values())})
    return rows


def run_view(records: list[dict], split: str, config, training_respondents: set[str] = frozenset()
             ) -> list[dict]:
    """The records a run sees. An ablation run (`config.run` set) keeps the fixed persona subset of
    `ablation_runs`, plus `ablation.training_respondents` of the training respondents (`real_answers`; none unless
    asked: the ablations vary the paper's recipe on persona cards); then, with a held-out domain, training and
    validation lose that domain and the test keeps only it. A learning-curve run (`ablation.respondent_pool:
    survey`) trains on its survey respondents' records alone (a new-items fold: on the items it does not hold out)
    and has no validation or test records. The main run sees whole splits."""
    if config.run and config.ablation.respondent_pool == "survey":
        if split != "train":
            return []
        heldout = set(config.ablation.heldout_items)  # a new-items fold trains on the other items only
        return [r for r in survey_training_records(config, curve_respondents(config))
                if r["question_id"] not in heldout]
    if config.run:
        asked, pool = config.ablation.training_respondents, sorted(training_respondents)
        if asked > len(pool):
            raise ValueError(f"ablation.training_respondents: {asked} asked, the dataset has {len(pool)} training "
                             "respondents (real_answers.training_respondents)")
        # The first `asked` of one seeded order: a larger size keeps the smaller sizes' respondents (nested curve).
        chosen = {pool[i] for i in np.random.default_rng([config.seeds.split, 4]).permutation(len(pool))[:asked]}
        respondent_records = [r for r in records if r["persona_id"] in chosen]
        records = [r for r in records if r["persona_id"] not in training_respondents]
        wanted = getattr(config.ablation_runs, f"{split}_personas")
        personas = sorted({r["persona_id"] for r in records})
        if wanted is not None and wanted < len(personas):
            # Seeded by the split seed and the split: the same subset for every run of the profile.
            rng = np.random.default_rng([config.seeds.split, SPLITS.index(split)])
            keep = set(rng.choice(personas, wanted, replace=False).tolist())
            records = [r for r in records if r["persona_id"] in keep]
        if respondent_records:
            records = sorted(records + respondent_records, key=lambda r: r["id"])
    heldout = config.ablation.heldout_domain
    if heldout is None:
        return records
    if split == "test":
        return [r for r in records if r["domain"] == heldout]
    return [r for r in records if r["domain"] != heldout]


def curve_respondents(config, eligible=None) -> list:
    """A learning-curve run's training respondents (`respondents.survey_training_respondents`): drawn with the
    split seed outside the whole held-out panel, which is drawn as the main run draws it."""
    eligible = survey_respondents(config.survey, config.bank) if eligible is None else eligible
    panel = held_out_panel(eligible, dataset_persona_ids(paths.data_dir(config.profile)), config.panel.respondents,
                           config.seeds.panel)
    return survey_training_respondents(eligible, {r.persona_id for r in panel}, config.ablation.training_respondents,
                                       [config.seeds.split, 5])


def load_split(config, split: str) -> list[dict]:
    """A split of the profile's dataset as the configuration's run sees it."""
    folder = paths.data_dir(config.profile)
    return run_view(read_jsonl(folder / f"{split}.jsonl"), split, config, training_respondent_ids(folder))


def write_dataset(splits: dict[str, list[dict]], out_dir: Path) -> dict[str, Path]:
    """`{train,val,test}.jsonl` (canonical JSON, sorted by id: same records, same bytes) and a DatasetDict."""
    files = {}
    for name in SPLITS:
        files[name] = out_dir / f"{name}.jsonl"
        write_jsonl(files[name], splits[name])
    _save_dataset_dict(splits, out_dir / "hf_dataset")
    return files


def _save_dataset_dict(splits: dict[str, list[dict]], target: Path) -> None:
    import shutil

    from datasets import Dataset, DatasetDict

    # Nested columns of varying shape (persona, options) are stored as JSON text: Arrow needs one schema.
    def flat(rows):
        return [{**r, "persona": json.dumps(r["persona"], sort_keys=True), "options": json.dumps(r["options"])}
                for r in rows]

    tmp = target.with_name(target.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    DatasetDict({name: Dataset.from_list(flat(rows)) for name, rows in splits.items() if rows}).save_to_disk(tmp)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)


def count_table(splits: dict[str, list[dict]]):
    """Long table: split x domain x question_type x reference_source -> records."""
    import pandas as pd

    rows = [{"split": name, "domain": r["domain"], "question_type": r["question_type"],
             "reference_source": r["reference_source"]} for name, recs in splits.items() for r in recs]
    table = pd.DataFrame(rows, columns=["split", "domain", "question_type", "reference_source"])
    return table.value_counts().rename("records").reset_index().sort_values(
        ["split", "domain", "question_type", "reference_source"], ignore_index=True)


def dataset_persona_ids(data_dir: Path) -> set[str]:
    """Every persona of the dataset in `data_dir` (train, val and test): a held-out panel never contains them."""
    return {r["persona_id"] for split in SPLITS for r in read_jsonl(data_dir / f"{split}.jsonl")}
