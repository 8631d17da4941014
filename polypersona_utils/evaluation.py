"""Notebook 04: score every variant's predictions and regenerate the study's tables and figures.

Non-LLM references are scored beside the models: `baseline-train-retrieval` answers a closed question with the
training respondents' most common answer to it, and an open question with the training reference of the most
similar training persona (most card fields in common) for the same question. A model that cannot beat it has
learned nothing about people.
"""
from __future__ import annotations

from collections import Counter
from functools import lru_cache
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from . import metrics, paths
from .fidelity import fidelity_and_diversity
from .provenance import atomic_write_json, atomic_write_text, provenance_record, read_jsonl, sha256_file
from .reporting import write_table
from .stats import mean_with_interval, persona_bootstrap_indices

MIN_PERSONAS_FOR_INTERVALS = 10  # fewer resampled personas give intervals too coarse to read
TEXT_METRICS = ("bleu_nltk", "rouge1", "rouge2", "rougeL", "bertscore_f1")
SURVEY_METRICS = ("length_sim", "sentence_count_sim", "sentiment_sim")
BASELINE = "baseline-train-retrieval"
CELL_BASELINE = "baseline-demographic-cell"
CARD_KEYS = ("gender", "occupation", "education", "region", "income_bracket", "political_identity")


def retrieval_baseline(train: list[dict], test: list[dict]) -> list[dict]:
    """Predictions of the non-LLM reference (see the module docstring); deterministic, ties by record id."""
    by_question: dict[str, list[dict]] = {}
    for record in sorted(train, key=lambda r: r["id"]):
        by_question.setdefault(record["question_id"], []).append(record)
    rows = []
    for record in test:
        pool = by_question.get(record["question_id"], [])
        if record["options"]:
            counts = Counter(r["reference"] for r in pool)
            answer = max(record["options"], key=lambda o: (counts[o], -record["options"].index(o))) if pool else ""
            parsed = answer or None
        else:
            overlap = lambda r: sum(r["persona"][k] == record["persona"][k] for k in CARD_KEYS)  # noqa: E731
            answer = max(pool, key=overlap)["reference"] if pool else ""
            parsed = None
        rows.append({"id": record["id"], "prediction": answer, "parsed_option": parsed,
                     "unparseable": bool(record["options"]) and parsed is None, "variant": BASELINE})
    return rows


ANSWER_COLUMNS = ("variant", "id", "persona_id", "domain", "question_id", "question_type", "reference_source",
                  "reference", "prediction", "parsed_option", "unparseable")


def demographic_cell_baseline(train: list[dict], test: list[dict]) -> list[dict]:
    """Closed questions only: the most common training answer among respondents in the same demographic cell
    (age band, sex, education, party), falling back to all training respondents when the cell is empty."""
    from .reporting import demographic_frame

    cell_of = lambda records: [tuple(row) for row in  # noqa: E731
                               demographic_frame([r["persona"] for r in records])[list(SUBGROUPS)].to_numpy()]
    train_closed = [r for r in train if r["options"]]
    train_cells = cell_of(train_closed) if train_closed else []
    test_closed = [r for r in test if r["options"]]
    rows = []
    for record, cell in zip(test_closed, cell_of(test_closed) if test_closed else []):
        same_question = [(r, c) for r, c in zip(train_closed, train_cells) if r["question_id"] == record["question_id"]]
        pool = [r for r, c in same_question if c == cell] or [r for r, _ in same_question]
        counts = Counter(r["reference"] for r in pool)
        answer = max(record["options"], key=lambda o: (counts[o], -record["options"].index(o))) if pool else ""
        rows.append({"id": record["id"], "prediction": answer, "parsed_option": answer or None,
                     "unparseable": not answer, "variant": CELL_BASELINE})
    return rows


def answers_frame(test: list[dict], predictions: dict[str, list[dict]]) -> pd.DataFrame:
    """One row per (variant, record): the texts every score is computed from."""
    by_id = {r["id"]: r for r in test}
    rows = []
    for variant, answers in predictions.items():
        for answer in sorted(answers, key=lambda a: a["id"]):
            record = by_id[answer["id"]]
            rows.append({"variant": variant, **{k: record[k] for k in ANSWER_COLUMNS[2:8]}, "id": record["id"],
                         "prediction": answer["prediction"], "parsed_option": answer["parsed_option"],
                         "unparseable": answer["unparseable"]})
    return pd.DataFrame(rows, columns=list(ANSWER_COLUMNS))


def add_scores(frame: pd.DataFrame, settings) -> pd.DataFrame:
    """Every per-example text and survey score, computed per variant."""
    parts = []
    for _, part in frame.groupby("variant", sort=False):
        scores = metrics.text_scores(part.prediction.fillna("").tolist(), part.reference.tolist(), settings)
        parts.append(part.assign(**scores))
    return pd.concat(parts, ignore_index=True)


def with_intervals(frame: pd.DataFrame, columns, resamples_of) -> pd.DataFrame:
    """Per variant: mean, lower and upper 95 % bootstrap bound of each column."""
    rows = []
    for variant, part in frame.groupby("variant", sort=False):
        resamples = resamples_of(part)
        row = {"variant": variant, "n": len(part), "personas": part.persona_id.nunique()}
        for column in columns:
            mean, low, high = mean_with_interval(part[column].to_numpy(float), resamples)
            row.update({column: mean, f"{column}_low": low, f"{column}_high": high})
        rows.append(row)
    # The same columns when there is nothing to summarise (a run whose test records hold no open answer).
    return pd.DataFrame(rows, columns=["variant", "n", "personas",
                                       *(f"{c}{s}" for c in columns for s in ("", "_low", "_high"))])


def paired_differences(frame: pd.DataFrame, columns, seed: int, n_samples: int, better: str, worse: str
                       ) -> pd.DataFrame:
    """`better` minus `worse` on the same records, personas resampled jointly (paired bootstrap)."""
    a = frame[frame.variant == better].set_index("id").sort_index()
    b = frame[frame.variant == worse].set_index("id").sort_index()
    resamples = persona_bootstrap_indices(list(a["persona_id"]), n_samples, seed)
    rows = []
    for column in columns:
        diff = a[column].to_numpy(float) - b[column].to_numpy(float)
        mean, low, high = mean_with_interval(diff, resamples)
        rows.append({"comparison": f"{better} - {worse}", "metric": column, "difference": mean,
                     "low": low, "high": high, "personas": a.persona_id.nunique()})
    return pd.DataFrame(rows)


def closed_alignment(frame: pd.DataFrame, gss_distributions: dict[str, dict[str, float]],
                     question_items: dict[str, str], options_of: dict[str, list[str]]) -> pd.DataFrame:
    """Per variant: agreement with the real respondent, unparseable share, and per linked question the alignment
    of the synthetic answer distribution with all GSS 2018 respondents' (1 - W1/W1max, Jensen-Shannon)."""
    rows = []
    closed = frame[frame.question_type != "open"]
    for variant, part in closed.groupby("variant", sort=False):
        real = part[part.reference_source == "real_respondent"]
        row = {"variant": variant, "closed_answers": len(part), "unparseable_share": part.unparseable.mean(),
               "real_answers": len(real), "agreement_with_respondent": (real.parsed_option == real.reference).mean()}
        alignments, distances = [], []
        for question_id, answers in real.groupby("question_id"):
            options = options_of[question_id]
            parsed = answers.parsed_option.dropna()
            if parsed.empty:
                continue
            synthetic = [float((parsed == o).sum()) for o in options]
            population = [gss_distributions[question_items[question_id]][o] for o in options]
            alignments.append(metrics.wasserstein_alignment(synthetic, population))
            distances.append(metrics.jensen_shannon_distance(synthetic, population))
        row.update({"questions": len(alignments), "distribution_alignment": np.mean(alignments) if alignments
                    else np.nan, "jensen_shannon": np.mean(distances) if distances else np.nan})
        rows.append(row)
    return pd.DataFrame(rows)


# The population tables depend only on the shipped GSS data (and the seed): computed once per process, read only.
@lru_cache(maxsize=4)
def gss_item_distributions(seed: int) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """Answer shares of all GSS 2018 respondents per item, and the human split-half ceiling of the alignment
    (two random halves of the respondents compared with each other, seeded)."""
    from .personas import SPENDING_OPTIONS, load_gss_sample
    from .questions import GSS_QUESTION_ITEMS

    sample = load_gss_sample()
    rng = np.random.default_rng(seed)
    shares, ceilings = {}, {}
    options = [SPENDING_OPTIONS[c] for c in (1, 0, -1)]
    for item in GSS_QUESTION_ITEMS:
        answers = sample[item].dropna().map(lambda c: SPENDING_OPTIONS[int(c)]).to_numpy()
        shares[item] = {o: float((answers == o).mean()) for o in options}
        half = rng.permutation(len(answers)) < len(answers) // 2
        counts = lambda a: [float((a == o).sum()) for o in options]  # noqa: E731
        ceilings[item] = metrics.wasserstein_alignment(counts(answers[half]), counts(answers[~half]))
    return shares, ceilings


SUBGROUPS = ("age_band", "gender", "education", "party")


@lru_cache(maxsize=1)
def gss_subgroup_distributions() -> pd.DataFrame:
    """Long table of all GSS 2018 respondents' answer shares per item within each demographic subgroup
    (the same subgroup labels as the persona cards: reporting.demographic_frame)."""
    from .personas import SPENDING_OPTIONS, all_gss_cards, eligible_respondents
    from .questions import GSS_QUESTION_ITEMS
    from .reporting import demographic_frame

    sample = eligible_respondents()
    groups = demographic_frame(all_gss_cards(sample))
    rows = []
    for item in GSS_QUESTION_ITEMS:
        answered = sample[item].notna()
        answers = sample.loc[answered, item].map(lambda c: SPENDING_OPTIONS[int(c)])
        for variable in SUBGROUPS:
            for category, idx in groups.loc[answered, variable].groupby(groups.loc[answered, variable]).groups.items():
                shares = answers.loc[idx].value_counts(normalize=True)
                rows += [{"item": item, "variable": variable, "category": category, "option": o,
                          "share": float(shares.get(o, 0.0))} for o in SPENDING_OPTIONS.values()]
    return pd.DataFrame(rows)


def subgroup_alignment(frame: pd.DataFrame, cards: dict[str, dict], items: dict[str, str],
                       options_of: dict[str, list[str]]) -> pd.DataFrame:
    """Per variant and demographic subgroup: mean over linked questions of 1 - W1/W1max between the answers of the
    test personas in the subgroup and all GSS 2018 respondents in the same subgroup."""
    from .reporting import demographic_frame

    real = gss_subgroup_distributions().set_index(["item", "variable", "category", "option"])["share"]
    linked = frame[frame.question_id.isin(items) & (frame.reference_source == "real_respondent")].copy()
    groups = demographic_frame([cards[p] for p in linked.persona_id])
    rows = []
    for variable in SUBGROUPS:
        linked["group"] = groups[variable].to_numpy()
        for (variant, category), part in linked.groupby(["variant", "group"], sort=False):
            alignments = []
            for question_id, answers in part.groupby("question_id"):
                parsed = answers.parsed_option.dropna()
                if parsed.empty:
                    continue
                options = options_of[question_id]
                synthetic = [float((parsed == o).sum()) for o in options]
                population = [real.get((items[question_id], variable, category, o), 0.0) for o in options]
                if sum(population) > 0:
                    alignments.append(metrics.wasserstein_alignment(synthetic, population))
            rows.append({"variant": variant, "variable": variable, "category": category, "answers": len(part),
                         "questions": len(alignments),
                         "distribution_alignment": float(np.mean(alignments)) if alignments else np.nan})
    return pd.DataFrame(rows)


def load_predictions(config) -> dict[str, list[dict]]:
    from .generation import variants

    return {v.name: read_jsonl(paths.predictions_dir(config.output_key) / f"{v.name}.jsonl") for v in variants(config)}


def persona_resamples(config):
    """part of a frame -> its persona bootstrap resamples (the profile's seed and count)."""
    return lambda part: persona_bootstrap_indices(list(part.persona_id), config.metrics.bootstrap_samples,
                                                  config.seeds.bootstrap)


def compute_tables(config, frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The study's tables from scored answers (pure given the frame, the question bank and the GSS data)."""
    from .questions import load_question_bank

    seeds, m = config.seeds, config.metrics
    resamples_of = persona_resamples(config)
    everything, frame = frame, frame[frame.variant != CELL_BASELINE]  # the cell baseline answers closed ones only
    text = with_intervals(frame, TEXT_METRICS, resamples_of)
    text.insert(3, "sacrebleu_corpus", [metrics.sacrebleu_corpus(
        frame[frame.variant == v].prediction.fillna(""), frame[frame.variant == v].reference, m.bleu_tokenize,
        m.bleu_smooth_method, m.bleu_lowercase)[0] for v in text.variant])
    survey = with_intervals(frame, SURVEY_METRICS, resamples_of)
    domain = frame.groupby(["variant", "domain"], sort=False)[list(TEXT_METRICS + SURVEY_METRICS)].mean().reset_index()
    bank = load_question_bank(config.questions.bank_path)
    items = {q.question_id: q.gss_item for q in bank.questions if q.gss_item and q.is_closed}
    options = {q.question_id: list(q.options) for q in bank.questions}
    shares, ceilings = gss_item_distributions(seeds.bootstrap)
    closed = closed_alignment(everything, shares, items, options)
    asked = sorted({items[q] for q in frame.question_id.unique() if q in items})
    closed.loc[len(closed)] = {"variant": "human split-half ceiling", "distribution_alignment":
                               float(np.mean([ceilings[i] for i in asked])) if asked else np.nan}
    model_variants = [v for v in frame.variant.unique() if not v.startswith("baseline-")]
    columns = TEXT_METRICS + SURVEY_METRICS
    paired = [paired_differences(frame, columns, seeds.bootstrap, m.bootstrap_samples, v,
                                 v.replace("-lora", "-zeroshot")) for v in model_variants if v.endswith("-lora")]
    paired += [paired_differences(frame, columns, seeds.bootstrap, m.bootstrap_samples, v, BASELINE)
               for v in model_variants]
    return {"model_comparison": text, "survey_metrics": survey, "domain_metrics": domain,
            "closed_alignment": closed, "paired_differences": pd.concat(paired, ignore_index=True)}


def metric_settings(config) -> dict:
    m = config.metrics
    return asdict(m) | {
        "sacrebleu_signature": metrics.sacrebleu_corpus(["a"], ["a"], m.bleu_tokenize, m.bleu_smooth_method,
                                                        m.bleu_lowercase)[1],
        "bleu_nltk": "sentence_bleu, 4-gram uniform, SmoothingFunction().method1, lower-cased whitespace tokens, "
                     "mean over examples",
        "bootstrap": f"{m.bootstrap_samples} persona resamples, seed {config.seeds.bootstrap}, 95 % percentile "
                     "intervals",
    }


def evaluate(config, split: str = "test") -> dict[str, pd.DataFrame]:
    """All tables of the study for `split`, written under results/<profile>/; returns them."""
    from .dataset import load_split
    from .questions import load_question_bank

    profile = config.output_key
    data = paths.data_dir(config.profile)
    test, train = load_split(config, split), load_split(config, "train")
    predictions = load_predictions(config)
    predictions[BASELINE] = retrieval_baseline(train, test)
    frame = add_scores(answers_frame(test, predictions), config.metrics)
    cells = answers_frame(test, {CELL_BASELINE: demographic_cell_baseline(train, test)})
    frame = pd.concat([frame, add_scores(cells, config.metrics)], ignore_index=True) if len(cells) else frame
    tables = compute_tables(config, frame)
    # Fidelity and diversity need the persona cards, which the stored answers do not carry: not in check_results.
    cards = {r["persona_id"]: r["persona"] for r in test}
    fidelity, tables["diversity"] = fidelity_and_diversity(frame, cards)
    tables["persona_fidelity"] = with_intervals(fidelity, ("own_card_sim", "other_card_sim", "fidelity_gap"),
                                                persona_resamples(config))
    bank = load_question_bank(config.questions.bank_path)
    tables["subgroup_alignment"] = subgroup_alignment(
        frame, cards, {q.question_id: q.gss_item for q in bank.questions if q.gss_item and q.is_closed},
        {q.question_id: list(q.options) for q in bank.questions})
    out = paths.tables_dir(profile)
    for name, table in tables.items():
        write_table(table, out / name, caption=f"{name.replace('_', ' ')} ({profile} profile)")
    # The answers and their scores, kept with the results: `make check-results` recomputes every table from them.
    atomic_write_text(paths.results_dir(profile) / "per_example_scores.csv",
                      frame.to_csv(index=False, float_format="%.6f"))
    settings = metric_settings(config)
    atomic_write_json(paths.results_dir(profile) / "metric_settings.json", settings)
    figures(tables, paths.figures_dir(profile), profile)
    distribution_figure(frame, bank, gss_item_distributions(config.seeds.bootstrap)[0],
                        paths.figures_dir(profile) / "answer_distributions")
    subgroup_distribution_figure(frame, cards, {q.question_id: q.gss_item for q in bank.questions
                                                if q.gss_item and q.is_closed},
                                 paths.figures_dir(profile) / "answer_distributions_by_subgroup")
    atomic_write_text(paths.results_dir(profile) / "README.md", results_readme(config, tables))
    atomic_write_json(paths.results_dir(profile) / "manifest.json", provenance_record(
        params=config.to_dict(), seeds=asdict(config.seeds), step="04_metrics", metric_settings=settings,
        inputs={f"predictions/{p.name}": sha256_file(p) for p in paths.predictions_dir(profile).glob("*.jsonl")}
        | {f"data/{split}.jsonl": sha256_file(data / f"{split}.jsonl")},
        outputs={p.name: sha256_file(p) for p in sorted(out.glob("*.csv"))}))
    return tables


def check_results(config) -> list[str]:
    """Recompute every table from the stored answers (per_example_scores.csv, text columns only) and list the
    tables whose CSV differs from the stored one. Empty list: the results are reproduced."""
    import tempfile

    stored = pd.read_csv(paths.results_dir(config.output_key) / "per_example_scores.csv", keep_default_na=False,
                         na_values={"parsed_option": [""]})
    answers = stored[list(ANSWER_COLUMNS)].copy()
    answers["parsed_option"] = answers.parsed_option.astype(object).where(answers.parsed_option.notna(), None)
    tables = compute_tables(config, add_scores(answers, config.metrics))
    different = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, table in tables.items():
            write_table(table, Path(tmp) / name, caption="")
            expected = paths.tables_dir(config.output_key) / f"{name}.csv"
            if not expected.exists() or expected.read_text() != (Path(tmp) / f"{name}.csv").read_text():
                different.append(name)
    return different


def figures(tables: dict[str, pd.DataFrame], folder: Path, profile: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .reporting import save_figure

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


def distribution_figure(frame: pd.DataFrame, bank, shares: dict[str, dict[str, float]], stem: Path) -> None:
    """Per linked GSS item asked in the test split: all respondents' answer shares against each variant's."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .reporting import save_figure

    linked = {q.question_id: q for q in bank.questions if q.gss_item and q.is_closed}
    asked = [qid for qid in sorted(linked) if qid in set(frame.question_id)]
    if not asked:
        return
    variants = list(frame.variant.unique())
    columns = min(5, len(asked))
    rows = -(-len(asked) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.4 * columns, 3.4 * rows), sharey=True, squeeze=False)
    for ax in axes.flat[len(asked):]:
        ax.set_visible(False)
    for ax, qid in zip(axes.flat, asked):
        options = list(linked[qid].options)
        width = 0.8 / (len(variants) + 1)
        ax.bar(np.arange(len(options)), [shares[linked[qid].gss_item][o] for o in options], width,
               label="GSS 2018 respondents", color="black")
        for k, variant in enumerate(variants, start=1):
            parsed = frame[(frame.question_id == qid) & (frame.variant == variant)].parsed_option.dropna()
            total = max(len(parsed), 1)
            ax.bar(np.arange(len(options)) + k * width, [(parsed == o).sum() / total for o in options], width,
                   label=variant)
        ax.set_xticks(np.arange(len(options)) + 0.4, options, rotation=30, ha="right")
        ax.set_title(linked[qid].gss_item)
    for row in axes:
        row[0].set_ylabel("share of answers")
    axes.flat[len(asked) - 1].legend(fontsize=7, loc="upper right")
    fig.suptitle("Synthetic against real answer distributions, linked GSS items (subgroups: "
                 "tables/subgroup_alignment)")
    fig.tight_layout()
    save_figure(fig, stem)
    plt.close(fig)


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


def subgroup_distribution_figure(frame: pd.DataFrame, cards: dict[str, dict], items: dict[str, str],
                                 stem: Path) -> None:
    """Per demographic subgroup: the answer distribution over the linked GSS items asked in the test split, real
    (all GSS 2018 respondents in the subgroup, the same items weighted as asked) against each variant's."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .personas import SPENDING_OPTIONS
    from .reporting import demographic_frame, save_figure

    linked = frame[frame.question_id.isin(items) & (frame.reference_source == "real_respondent")].copy()
    if linked.empty:
        return
    options = list(SPENDING_OPTIONS.values())
    real = gss_subgroup_distributions().set_index(["item", "variable", "category", "option"])["share"]
    groups = demographic_frame([cards[p] for p in linked.persona_id])
    variants = [v for v in linked.variant.unique() if v != BASELINE]
    colours = {"Too little": "tab:blue", "About right": "tab:gray", "Too much": "tab:red"}
    fig, axes = plt.subplots(len(SUBGROUPS), 1, figsize=(12, 2.8 * len(SUBGROUPS)))
    for ax, variable in zip(axes, SUBGROUPS):
        linked["group"] = groups[variable].to_numpy()
        labels, stacks = [], []
        for category in sorted(linked.group.unique()):
            part = linked[linked.group == category]
            asked = part[part.variant == variants[0]].question_id.map(items)  # one row per question asked
            population = np.mean([[real.get((item, variable, category, o), 0.0) for o in options] for item in asked],
                                 axis=0)
            labels.append(f"{category}\nGSS")
            stacks.append(population)
            for variant in variants:
                parsed = part[part.variant == variant].parsed_option
                labels.append(variant.replace("smollm2-135m-", ""))
                stacks.append([float((parsed == o).mean()) for o in options])
        bottom = np.zeros(len(stacks))
        for k, option in enumerate(options):
            heights = np.array([s[k] for s in stacks])
            ax.bar(range(len(stacks)), heights, bottom=bottom, color=colours[option], label=option)
            bottom += heights
        ax.set_xticks(range(len(stacks)), labels, fontsize=6, rotation=90)
        ax.set(ylabel="share", title=f"by {variable.replace('_', ' ')}")
    axes[0].legend(fontsize=7, loc="upper right", ncol=3)
    fig.suptitle("Answers to the linked GSS items per subgroup: real respondents against each variant "
                 "(unparseable answers leave the bar short of 1)")
    fig.tight_layout()
    save_figure(fig, stem)
    plt.close(fig)


def results_readme(config, tables: dict[str, pd.DataFrame]) -> str:
    """results/<profile>/README.md: the tables in words, and how they relate to the paper's."""
    from .reporting import profile_banner

    text, closed, paired = tables["model_comparison"], tables["closed_alignment"], tables["paired_differences"]

    def interval(row, metric):
        return f"{row[metric]:.3f} [{row[f'{metric}_low']:.3f}, {row[f'{metric}_high']:.3f}]"

    lines = [f"# Results: {config.output_key}", "", profile_banner(config), "",
             "The paper reports (its own models, data and metric settings, not reproduced here): best BLEU 0.090 "
             "(TinyLlama-1.1B), ROUGE-1 0.429 (Phi-2), BERTScore above 0.88. The numbers below come from "
             f"`{config.models[0].model_id}` on this profile's data; BERTScore here uses "
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
    lines += ["", "## Closed questions against real GSS 2018 respondents", "",
              closed.to_markdown(index=False, floatfmt=".3f"), "",
              "`agreement_with_respondent`: share of linked closed questions where the answer equals that "
              "respondent's real answer (unparseable counts as disagreement). `distribution_alignment`: "
              "1 - W1/W1max between the answers given across test personas and all GSS 2018 respondents, mean over "
              "questions; the split-half ceiling is what two random halves of real respondents reach.", "",
              "Ablations: `ablations.md` (notebook 05). Tables: `tables/` (CSV, Markdown, LaTeX). Figures: `figures/`. Metric settings: "
              "`metric_settings.json`. Provenance: `manifest.json`. Per-example scores: `per_example_scores.csv`.",
              ""]
    return "\n".join(lines)


if __name__ == "__main__":  # python -m polypersona_utils.evaluation check PROFILE: the main run and every ablation run
    import sys

    from .ablations import finished_runs
    from .config import load_config

    profile = sys.argv[2] if len(sys.argv) > 2 else "default"
    configs = [load_config(profile)] + [load_config(profile, overrides=overrides | {"run": run})
                                        for run, overrides in finished_runs(profile).items()]
    failed = False
    for config in configs:
        mismatched = check_results(config)
        if mismatched:
            failed = True
            print(f"results/{config.output_key}: recomputed tables differ from the stored ones: {mismatched}")
        else:
            print(f"results/{config.output_key}: every table recomputed from the stored answers matches")
    sys.exit(1 if failed else 0)
