"""The learning curve (notebook 07, `make learning-curve`): how the synthetic panel improves with the number of real
respondents the model is trained on, beside the statistician's references fitted on the same respondents.

One run per point of the profile's `learning_curve` (`config_runs.CurvePoint`), named from its definition
(`curve-smollm2-135m-sft-512-top8-fp32`): trained (notebook 02) on the real answers of k survey respondents drawn
outside the held-out panel (`ablation.respondent_pool: survey`, packed by respondent) and scored on the whole panel
(notebook 06). A point is its own folder under `results/<profile>/runs/`, committed once scored; `missing_points`
says which points have no panel result made with the settings they now have on the panel drawn now, and `make
learning-curve` runs only those. This module names the points and collects their panel tables into one long table
(point, training respondents, variant, measure, value and interval, with the paired difference of the fine-tuned
model minus the same-card statistician), a figure and the results README's section.
"""
from __future__ import annotations

import json

import pandas as pd

from .. import paths
from ..config import run_model, run_of
from ..config_runs import run_record_settings
from ..panel.readme import MARGINAL, STATISTICIAN, largest_point_sentence
from ..panel.references import ANCHORS
from ..panel.report import DISTRIBUTIONS_FILE, population_frame, read_distributions, result_settings, rewrite_verdict
from ..panel.synthetic import subgroup_variables
from ..provenance import atomic_write_json, provenance_record, sha256_file
from ..reporting.checks import TableCheck, check_tables, read_stored
from ..reporting.readme import write_section
from ..reporting.tables import write_table
from .curve_figure import curve_figure
from .levers import TABLE as LEVERS, lever_pairs, lever_sentence, lever_table

TABLE = "learning_curve"
MEASURES = {  # measure -> (panel table, value column, lower, upper); higher is better except log-loss
    "log_loss": ("panel_individual", "log_loss", "log_loss_lo", "log_loss_hi"),
    "accuracy": ("panel_individual", "accuracy", "accuracy_lo", "accuracy_hi"),
    "subgroup_effect_correlation": ("panel_effects", "correlation", "correlation_lo", "correlation_hi"),
    "subgroup_effect_slope": ("panel_effects", "slope", "slope_lo", "slope_hi"),
    "alignment": ("panel_alignment", "alignment", "alignment_lo", "alignment_hi"),
}
WHOLE_PANEL = {"panel_alignment": ("variable", "all")}  # tables with a row per subgroup: the whole panel's row
PAIRED = {  # measure of a paired difference (fine-tuned minus a reference) -> (reference, panel_paired's measure)
    f"log_loss_minus_{STATISTICIAN}": (STATISTICIAN, "log_loss"),
    f"subgroup_effect_slope_minus_{STATISTICIAN}": (STATISTICIAN, "subgroup_effect_slope"),
    f"log_loss_minus_{MARGINAL}": (MARGINAL, "log_loss"),
}
COLUMNS = ["run", "model", "objective", "top_layers", "base", "levers", "training_respondents", "variant", "measure",
           "value", "low", "high"]


def point_name(point, config) -> str:
    """A point's run name from its definition: `curve-<model>-<sft|options>-<k|all>[-top<L>][-fp32][-e<E>][-lr<LR>]`."""
    parts = ["curve", point_model(point, config), "sft" if point.objective == "sft" else "options",
             "all" if point.respondents is None else str(point.respondents)]
    parts += [f"top{point.top_layers}"] if point.top_layers else []
    parts += ["fp32"] if point.quantization == "none" else []
    return "-".join(parts + point_levers(point))


def point_model(point, config) -> str:
    """The model a point trains: its own, else the one every run trains (`config.run_model`)."""
    return point.model or run_model(config)


def point_levers(point) -> list[str]:
    """What a point changes of the training recipe besides its size, layers and base: `e<E>` (epochs other than
    one), `lr<LR>` (a learning rate of its own)."""
    return ([f"e{point.epochs:g}"] if point.epochs != 1 else []) + (
        [f"lr{point.learning_rate:g}"] if point.learning_rate is not None else [])


def point_overrides(point, config) -> dict:
    """The settings a point's run changes: survey respondents, packed by respondent, and the point's levers."""
    out = {"ablation.respondent_pool": "survey", "ablation.training_respondents": point.respondents,
           "ablation_runs.model": point_model(point, config), "training.packing": "respondent",
           "training.objective": point.objective, "training.epochs": point.epochs,
           "lora.top_layers": point.top_layers, "training.quantization": point.quantization}
    if point.quantization == "none":
        out["training.compute_dtype"] = "float32"
    if point.learning_rate is not None:
        out["training.learning_rate"] = point.learning_rate
    return out


def learning_curve_runs(config) -> dict[str, dict]:
    """Run name -> overrides, one run per point of the profile's curve, in the profile's order."""
    runs = {point_name(p, config): point_overrides(p, config) for p in config.learning_curve}
    if len(runs) != len(config.learning_curve):
        raise ValueError(f"learning_curve: two points define the same run ({sorted(runs)})")
    return runs


def point_result(config, name: str) -> dict | None:
    """The provenance a point's panel (notebook 06) recorded, or None when it has none."""
    path = paths.RunPaths(config.profile, name).results / "provenance" / "06_panel.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def scored_on(config, name: str) -> set[str] | None:
    """The persona ids of the respondents a run's stored panel distributions score (None: none stored)."""
    path = paths.RunPaths(config.profile, name).results / DISTRIBUTIONS_FILE
    return set(pd.read_csv(path, usecols=["persona_id"], dtype=str).persona_id) if path.exists() else None


def missing_points(config, runs: dict[str, dict] | None = None) -> list[str]:
    """The runs (default: the curve's points) with no panel result made with the settings they have now on the
    panel they have now (never scored, scored with other settings, or scored on other respondents: the panel is
    drawn outside the dataset's personas, so a dataset with other real respondents moves it), in order: what
    `make learning-curve` (and `make new-items`) runs."""
    from ..study import StudyRun

    missing = []
    for name, overrides in (learning_curve_runs(config) if runs is None else runs).items():
        stored, run = point_result(config, name), run_of(config, name, overrides)
        if (stored is None or comparable(stored.get("result_settings")) != result_settings(run)
                or scored_on(config, name) != {r.persona_id for r in StudyRun(run).panel}):
            missing.append(name)
    return missing


def comparable(stored: dict | None) -> dict | None:
    """Stored result settings as `result_settings` now writes them: results recorded while the adapter settings
    held the whole `ablation_runs` section are compared on what of it changes a run (`run_record_settings`)."""
    if not stored or not isinstance(stored.get("training", {}).get("ablation_runs"), dict):
        return stored
    return {**stored, "training": {**stored["training"],
                                   "ablation_runs": run_record_settings(stored["training"]["ablation_runs"])}}


PANEL_TABLES = ("panel_individual", "panel_effects", "panel_alignment", "panel_paired")


def measure_rows(table: str, frame: pd.DataFrame) -> pd.DataFrame:
    """A panel table's rows that give one value per variant (`WHOLE_PANEL`: the whole panel's row)."""
    if table in WHOLE_PANEL:
        column, value = WHOLE_PANEL[table]
        return frame[frame[column] == value]
    return frame


def scored_points(config) -> list[str]:
    """The points whose panel tables exist (a curve is committed point by point), in the profile's order."""
    return [name for name in learning_curve_runs(config)
            if all((paths.RunPaths(config.profile, name, "test").tables / f"{t}.csv").exists() for t in PANEL_TABLES)]


def collect(config) -> pd.DataFrame:
    """Every scored point's panel measures and paired differences, long (`COLUMNS`); FileNotFoundError when no
    point is scored yet (run `make learning-curve`)."""
    scored = scored_points(config)
    if not scored:
        raise FileNotFoundError(f"no learning-curve point of {config.profile} has panel tables yet; "
                                f"run make learning-curve PROFILE={config.profile}")
    rows = []
    for point, (name, overrides) in zip(config.learning_curve, learning_curve_runs(config).items()):
        if name not in scored:
            continue
        folder = paths.RunPaths(config.profile, name, "test").tables
        tables = {table: pd.read_csv(folder / f"{table}.csv") for table in PANEL_TABLES}
        stored = point_result(config, name) or {}
        described = {"run": name, "model": overrides["ablation_runs.model"], "objective": point.objective,
                     "top_layers": point.top_layers or "all", "base": "fp32" if point.quantization == "none" else "nf4",
                     "levers": " ".join(point_levers(point)),
                     "training_respondents": stored.get("training_respondents", point.respondents)}
        for measure, (table, value, low, high) in MEASURES.items():
            for row in measure_rows(table, tables[table]).to_dict("records"):
                rows.append({**described, "variant": row["variant"], "measure": measure, "value": row[value],
                             "low": row[low], "high": row[high]})
        paired = tables["panel_paired"]
        for measure, (reference, source) in PAIRED.items():
            chosen = paired[(paired.reference == reference) & (paired.measure == source)
                            & paired.variant.str.endswith("-lora")]
            for row in chosen.to_dict("records"):
                rows.append({**described, "variant": row["variant"], "measure": measure, "value": row["difference"],
                             "low": row["difference_lo"], "high": row["difference_hi"]})
    return pd.DataFrame(rows, columns=COLUMNS)


def anchor_values(config) -> dict[str, dict[str, float]]:
    """measure -> {anchor variant: value} from the main run's panel tables (the anchors are fitted there only)."""
    folder, out = config.paths().tables, {}
    for measure, (table, value, *_) in MEASURES.items():
        path = folder / f"{table}.csv"
        if path.exists():
            rows = measure_rows(table, pd.read_csv(path))
            out[measure] = {r.variant: r[value] for _, r in rows.iterrows() if r.variant in ANCHORS}
    return out


def interval(value: float, low: float, high: float) -> str:
    return f"{value:.3f} [{low:.3f}, {high:.3f}]"


def point_table(curve: pd.DataFrame) -> pd.DataFrame:
    """One row per point, largest first: the fine-tuned model's log-loss (and its paired difference to the
    population marginal) and slope beside the same-card statistician's (fitted on the same respondents), and the
    paired differences with their intervals."""
    rows = []
    for run, part in curve.groupby("run", sort=False):
        lora = part[part.variant.str.endswith("-lora")].set_index("measure")
        statistician = part[part.variant == STATISTICIAN].set_index("measure")
        first = part.iloc[0]
        row = {"point": run, "respondents": int(first.training_respondents)}
        for label, frame, measure in (("log-loss", lora, "log_loss"),
                                      (f"minus {MARGINAL}", lora, f"log_loss_minus_{MARGINAL}"),
                                      (f"{STATISTICIAN} log-loss", statistician, "log_loss"),
                                      ("difference", lora, f"log_loss_minus_{STATISTICIAN}"),
                                      ("slope", lora, "subgroup_effect_slope"),
                                      (f"{STATISTICIAN} slope", statistician, "subgroup_effect_slope"),
                                      ("slope difference", lora, f"subgroup_effect_slope_minus_{STATISTICIAN}")):
            row[label] = interval(*frame.loc[measure, ["value", "low", "high"]]) if measure in frame.index else ""
        rows.append(row)
    return pd.DataFrame(rows).sort_values("respondents", ascending=False, kind="stable")


def curve_levers(config, curve: pd.DataFrame) -> pd.DataFrame:
    """`runs.levers.lever_table` on the scored points of `curve`: each point that changes one setting of an earlier
    point at the same size, minus that point, from their stored panel distributions."""
    from ..study import StudyRun

    scored = set(curve.run)
    points = [(p, n) for p, n in zip(config.learning_curve, learning_curve_runs(config)) if n in scored]
    defaults = {"model": run_model(config), "learning_rate": config.training.learning_rate}
    pairs = lever_pairs(points, defaults)
    names = {name for pair in pairs for name in pair[:2]}
    distributions = {name: read_distributions(paths.RunPaths(config.profile, name).results / DISTRIBUTIONS_FILE)
                     for name in names}
    counts = curve.drop_duplicates("run").set_index("run").training_respondents
    unknown = sorted(name for name in names if pd.isna(counts[name]))
    if unknown:
        raise ValueError(f"{', '.join(unknown)}: no training_respondents in its panel provenance (06_panel.json); "
                         "run its notebook 06 again")
    respondents = {name: int(counts[name]) for name in names}
    population = population_frame(StudyRun(config)) if pairs else None
    return lever_table(pairs, respondents, distributions, population, config.metrics.bootstrap_samples,
                       config.seeds.bootstrap, config.panel.min_cell_respondents, subgroup_variables(config.survey))


def curve_section(curve: pd.DataFrame, config, minutes: dict[str, tuple[float, float]],
                  levers: pd.DataFrame | None = None) -> str:
    """The results README's section: the answer at the largest point, the points as a table, the levers tried,
    what they cost."""
    runs = learning_curve_runs(config)
    lines = ["## Learning curve: real respondents in training (notebook 07)", ""]
    sentence = largest_point_sentence(curve)
    lines += [sentence, ""] if sentence else []
    lines += [f"Points `{'`, `'.join(runs)}`: each trained on k {config.survey.title} respondents' real answers "
              f"alone (drawn outside the held-out panel, nested), packed by respondent, and scored on the whole "
              f"panel ({config.panel.respondents} held-out respondents); `{STATISTICIAN}` is fitted on the same k. "
              "Intervals: respondent bootstrap; differences paired on the same draws. Table: "
              "`tables/learning_curve.*`; figure: `figures/learning_curve.png`.", "",
              point_table(curve).to_markdown(index=False), ""]
    said = lever_sentence(levers) if levers is not None else None
    lines += [said, ""] if said else []
    waiting = [name for name in runs if name not in set(curve.run)]
    if waiting:
        lines += ["Not scored yet (`make learning-curve` runs them, each committed when scored): "
                  + ", ".join(f"`{name}`" for name in waiting) + ".", ""]
    if minutes:
        lines += ["Minutes per point, training + panel (training: the frozen layers' states and the loop, as "
                  "`training_metrics.json` records them for the session that finished it; panel: notebook 06): "
                  + ", ".join(f"`{k}` {t:.1f} + {p:.1f}" for k, (t, p) in minutes.items()) + ".", ""]
    return "\n".join(lines)


def run_minutes(config) -> dict[str, tuple[float, float]]:
    """Minutes each scored point took: (training, panel). Training: the frozen layers' states and the training loop
    as `training_metrics.json` records them for the session that finished the training (a notebook 02 that finds
    the adapter trained takes seconds, so its papermill duration would say nothing); panel: notebook 06's duration
    as papermill recorded it."""
    out = {}
    for name in learning_curve_runs(config):
        folder = paths.RunPaths(config.profile, name)
        metrics, panel = folder.results / "training_metrics.json", folder.executed / "06_panel.ipynb"
        if not (metrics.exists() and panel.exists()):
            continue
        trained = json.loads(metrics.read_text(encoding="utf-8"))
        duration = json.loads(panel.read_text(encoding="utf-8"))["metadata"].get("papermill", {}).get("duration")
        if duration is not None:
            out[name] = (sum(m.get("lower_states_s_this_session", 0.0) + m["wall_time_s_this_session"]
                             for m in trained.values()) / 60, duration / 60)
    return out


def run_learning_curve(config) -> pd.DataFrame:
    """Notebook 07: the long table, the figure and the results README section of the profile's curve."""
    where = config.paths()
    curve = collect(config)
    write_table(curve, where.tables / TABLE, caption=f"learning curve: the panel against training respondents "
                                                     f"({config.profile})")
    curve_figure(curve, where.figures / TABLE, f"Learning curve ({config.profile})", anchor_values(config))
    levers = curve_levers(config, curve)
    write_table(levers, where.tables / LEVERS, caption=f"levers on the learning curve ({config.profile})")
    levers = read_stored(where.tables / f"{LEVERS}.csv")  # the words read the table as stored
    write_section(where.results, "learning_curve", curve_section(curve, config, run_minutes(config), levers))
    rewrite_verdict(config)  # the verdict opens with the curve's largest point
    atomic_write_json(where.results / "provenance" / "07_learning_curve.json", provenance_record(
        config.to_dict(), config.to_dict()["seeds"], {"learning_curve": sha256_file(where.tables / f"{TABLE}.csv"),
                                                     LEVERS: sha256_file(where.tables / f"{LEVERS}.csv")},
        step="07_learning_curve", runs=sorted(set(curve.run), key=list(learning_curve_runs(config)).index)))
    return curve


def check_learning_curve(config) -> list[TableCheck]:
    """The curve's table collected again from the points' checked panel tables and its levers recomputed from their
    stored distributions, each compared within the declared tolerances; none before notebook 07 ran."""
    if not (config.paths().tables / f"{LEVERS}.csv").exists():
        return []
    curve = collect(config)
    return check_tables({TABLE: curve, LEVERS: curve_levers(config, curve)}, config.paths().tables)
