"""The study's one command line: `python -m polypersona_utils <command>` (`--help` lists them). Every command the
Makefile runs is here; each parses its arguments and calls the module that does the work. Notebooks never import
this module, so what it imports is no notebook's prerequisite (`make_plan.notebook_modules`). Each command imports
its stage inside its function: make runs `prepare` at every start, and it loads only what the stamps need."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def prepare(args) -> int:
    """Refresh make's step stamps and sources list; print the standard ablation runs."""
    from .config import ConfigError
    from .make_plan import prepare as refresh

    try:
        print(" ".join(refresh(args.profile, args.folder)))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def run_overrides(args) -> int:
    from .config import load_config
    from .runs.ablations import overrides_for

    knobs = dict(arg.split("=", 1) for arg in args.knobs)
    print(json.dumps(overrides_for(load_config(args.profile), args.name, knobs), sort_keys=True))
    return 0


def missing_points(args) -> int:
    """The learning-curve points to run: those with no panel result made with their present settings on the
    present panel."""
    from .config import load_config
    from .runs.learning_curve import missing_points as missing
    from .runs.new_items import new_items_runs

    config = load_config(args.profile)
    print(" ".join(missing(config, new_items_runs(config) if args.new_items else None)))
    return 0


def gguf_path(args) -> int:
    """The file of an embedded GGUF model (joined from its chunk packages first, where it ships in chunks)."""
    from . import paths
    from .llm.models import EMBEDDED_MODELS, float32_gguf, gguf_path as path_of

    if args.model not in EMBEDDED_MODELS:
        print(f"gguf-path: {args.model!r} is not an embedded model ({sorted(EMBEDDED_MODELS)})", file=sys.stderr)
        return 2
    print((float32_gguf if args.float32 else path_of)(EMBEDDED_MODELS[args.model], paths.MODEL_CACHE_DIR))
    return 0


def train(args) -> int:
    import logging

    from .config import load_config
    from .modeling.training import train_adapters

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    train_adapters(load_config(args.profile))
    return 0


def check_results(args) -> int:
    """The main run and every other run with stored answers (ablation runs: metrics and maybe a panel;
    learning-curve points and new-items folds: a panel only; the main run's new-items tables from every fold's
    held-out pairs and the curve's levers table from the points' stored distributions), each table recomputed and
    compared with the stored one within the tolerances `reporting.checks` declares: one line per table with its
    largest difference, and every cell beyond its tolerance named by table, row and column."""
    from . import paths
    from .config import load_run
    from .evaluation.scoring import check_results as check_metrics
    from .panel.report import check_panel
    from .runs.learning_curve import check_learning_curve
    from .runs.new_items import check_new_items

    runs = paths.results_dir(args.profile) / "runs"
    configs = [load_run(args.profile)] + [
        load_run(args.profile, folder.name, json.loads((folder / "overrides.json").read_text()))
        for folder in (sorted(runs.glob("*/")) if runs.exists() else []) if (folder / "overrides.json").exists()]
    failed = False
    for config in configs:
        name = config.paths().name
        scored = (config.paths().results / "per_example_scores.csv").exists()
        # the main run also holds the profile's new-items and curve tables, checked even where its own panel is
        # not there (a workspace that ran only `make new-items` or `make learning-curve`)
        checks = (check_metrics(config) if scored else []) + check_panel(config) + (
            [] if config.run else check_new_items(config) + check_learning_curve(config))
        if not checks:
            print(f"results/{name}: no stored answers (an unfinished run); nothing to check")
            continue
        print(f"results/{name}:")
        for check in checks:
            print(f"  {check.line()}")
        problems = [problem for check in checks for problem in check.problems]
        if problems:
            failed = True
            print(f"results/{name}: {len(problems)} recomputed values beyond their tolerance:")
            print("\n".join(f"    {problem}" for problem in problems[:20])
                  + (f"\n    ... and {len(problems) - 20} more" if len(problems) > 20 else ""))
        else:
            print(f"results/{name}: every table recomputed from the stored answers matches within its tolerance")
    return 1 if failed else 0


def score(args) -> int:
    from .config import ConfigError, load_config
    from .evaluation.external_scores import score_predictions
    from .user_files import UserFileError, resolve_user_path

    try:
        score_predictions(load_config(args.profile), resolve_user_path(args.predictions, "PREDICTIONS"), args.name)
    except (UserFileError, ConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"results/{args.profile}/scored/{args.name}/README.md")
    return 0


def score_panel(args) -> int:
    from .config import load_config
    from .panel.outside_scoring import score_panel_file
    from .user_files import UserFileError

    config = load_config(args.profile)
    try:
        score_panel_file(config, args.predictions, args.name)
    except UserFileError as error:
        print(f"make score-panel: {error}", file=sys.stderr)
        return 2
    print(f"{config.paths().results / 'scored-panels' / args.name}: every panel table for {args.name}")
    return 0


def panel_template(args) -> int:
    from .config import load_config
    from .panel.outside_scoring import panel_template as template
    from .provenance import atomic_write_text

    atomic_write_text(args.out, template(load_config(args.profile)).to_csv(index=False))
    print(f"{args.out}: the panel's pairs to fill in")
    return 0


def panel_estimates(args) -> int:
    from .panel.estimates import estimate_shares, read_answers, read_predictions
    from .provenance import atomic_write_text

    try:
        predictions = read_predictions(args.predictions)
        answers = read_answers(args.answers, predictions, args.predictions)
        variables = tuple(v for v in args.subgroups.split(",") if v)
        unknown = [v for v in variables if v not in predictions.columns]
        if unknown:
            raise ValueError(f"{args.predictions}: line 1: no subgroup column '{unknown[0]}'")
    except ValueError as error:
        print(f"panel-estimates: {error}", file=sys.stderr)
        return 2
    table = estimate_shares(predictions, answers, variables, args.level)
    atomic_write_text(args.out, table.to_csv(index=False))
    print(f"{args.out}: {len(table)} estimates ({answers.persona_id.nunique()} sampled of "
          f"{predictions.persona_id.nunique()} respondents)")
    return 0


def report(args) -> int:
    from .config import load_config
    from .reporting.report_page import write_report

    results = load_config(args.profile).paths().results
    if not (results / "README.md").exists():
        print(f"make report: {results / 'README.md'}: no results yet (run make reproduce first)", file=sys.stderr)
        return 2
    print(write_report(results))
    return 0


def parser() -> argparse.ArgumentParser:
    from .panel.estimates import LEVEL

    main = argparse.ArgumentParser(prog="python -m polypersona_utils",
                                   description="The Polypersona study's commands (the Makefile runs them).")
    commands = main.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, function, help: str, *arguments: tuple[str, dict]):
        sub = commands.add_parser(name, help=help, description=help)
        for flag, options in arguments:
            sub.add_argument(flag, **options)
        sub.set_defaults(run=function)

    profile = ("profile", {"help": "a profile: params/<PROFILE>.yaml"})
    command("prepare", prepare, "refresh make's step stamps and sources list; print the standard ablation runs",
            profile, ("folder", {"type": Path, "help": "where the stamps live"}))
    command("run-overrides", run_overrides, "a run's parameter overrides (JSON) from its name and make's knobs",
            profile, ("name", {}), ("knobs", {"nargs": "*", "metavar": "KNOB=VALUE"}))
    command("missing-points", missing_points, "the learning-curve points (or new-items folds) with no result made "
            "with their present settings on the present panel (what make learning-curve and make new-items run)",
            profile,
            ("--new-items", {"action": "store_true", "help": "the new-items fold runs instead of the curve's points"}))
    command("gguf-path", gguf_path, "the file of an embedded GGUF model (what make serve serves)",
            ("model", {"help": "an embedded model name"}),
            ("--float32", {"action": "store_true", "help": "its weights de-quantised to float32, a GGUF of their own "
                           "(made once; make serve FLOAT32=1)"}))
    command("train", train, "train every model of a profile (notebook 02's work; for accelerate launch)", profile)
    command("check-results", check_results, "recompute every table from the stored answers and compare", profile)
    command("score", score, "score answers produced elsewhere on the test split (make score)", profile,
            ("predictions", {}), ("name", {}))
    command("score-panel", score_panel, "score a model's option probabilities on the held-out panel", profile,
            ("predictions", {"type": Path}), ("name", {}))
    command("panel-template", panel_template, "write the held-out panel's pairs to fill in", profile,
            ("out", {"type": Path}))
    command("panel-estimates", panel_estimates,
            "prediction-powered estimates of answer shares from a predictor's probabilities for every card of a "
            "pool and real answers for a random sample of it",
            ("predictions", {"type": Path, "help": "panel-format CSV: persona_id, question_id, options, "
                                                   "probabilities, subgroup columns"}),
            ("answers", {"type": Path, "help": "CSV: persona_id, question_id, real_option"}),
            ("out", {"type": Path, "help": "where to write the estimates (CSV)"}),
            ("--subgroups", {"default": "", "help": "comma-separated subgroup columns of PREDICTIONS"}),
            ("--level", {"type": float, "default": LEVEL, "help": "interval level (default 0.95)"}))
    command("report", report, "results/<PROFILE>/report.html: the findings on one page", profile)
    return main


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return args.run(args)
