"""Ablation runs (notebook 05): each is the study's notebooks 02-04 rerun with a few parameters changed.

A run named NAME writes under `artifacts/<profile>/runs/NAME/` and `results/<profile>/runs/NAME/`. Every ablation
run trains and tests on the same fixed persona subset of the profile's splits (`ablation_runs` in the params; the
default profile's is small enough for the CPU budget), and the reference run, the profile's own settings on that
subset (named by its rank: `rank16` when `lora.r` is 16), is what the others are compared with, record by record.
Rank runs keep the profile's alpha / r, so the LoRA scaling stays the same.

    make ablation NAME=rank32 LORA_R=32          # one run, from the shell
    make ablations                               # the standard set (`standard_ablations`), then notebook 05

This module defines the runs (what make plans and stamps); `ablation_report` collects the finished ones.
"""
from __future__ import annotations

from .learning_curve import learning_curve_runs
from .new_items import new_items_runs


def reference_run(config) -> str:
    """The profile's own settings on the ablation subset, named by its LoRA rank."""
    return f"rank{config.lora.r}"


def rank_overrides(config, rank: int) -> dict:
    """LoRA rank `rank` with the profile's alpha / r kept."""
    return {"lora.r": rank, "lora.alpha": max(1, round(rank * config.lora.alpha / config.lora.r))}


def standard_ablations(config) -> dict[str, dict]:
    """The standard set for a profile: the reference, then of the kinds in `ablation_runs.kinds` (all four by
    default): its rank times each of `ablation_runs.rank_factors` (half, twice and four times by default), a held-out
    domain, the persona card removed, and the unquantised base in fp32 instead of QLoRA's 4-bit NF4 one
    (`lora-16bit`: the paper's name for it)."""
    kinds = config.ablation_runs.kinds
    runs = {reference_run(config): {}}
    for rank in (int(config.lora.r * factor) for factor in config.ablation_runs.rank_factors):
        if "rank" in kinds and rank >= 1 and rank != config.lora.r:
            runs[f"rank{rank}"] = rank_overrides(config, rank)
    domain = config.ablation_runs.heldout_domain
    if "heldout" in kinds:
        runs[f"heldout-{domain}"] = {"ablation.heldout_domain": domain}
    if "no-persona" in kinds:
        runs["no-persona"] = {"ablation.include_persona": False}
    if "lora-16bit" in kinds:
        runs["lora-16bit"] = {"training.quantization": "none", "training.compute_dtype": "float32"}
    return runs


def named_runs(config) -> dict[str, dict]:
    """Every run with a name of its own (the standard ablations, the learning curve's points and the new-items
    folds): name -> overrides."""
    return standard_ablations(config) | learning_curve_runs(config) | new_items_runs(config)


KNOBS = {  # make variables -> parameter keys (`make ablation NAME=... LORA_R=32 HELDOUT=finance ...`)
    "LORA_R": "lora.r", "HELDOUT": "ablation.heldout_domain", "NO_PERSONA": "ablation.include_persona",
    "QUANT": "training.quantization", "EPOCHS": "training.epochs", "FULL": "ablation_runs",
    "OBJECTIVE": "training.objective", "RESPONDENTS": "ablation.training_respondents",
    "PACKING": "training.packing", "TOP_LAYERS": "lora.top_layers",
}


def subset_settings(config) -> dict:
    """What only ablation runs read (the persona subset): make's stamp for them; the main run never reads it."""
    return config.select(("ablation_runs",))


def overrides_for(config, name: str, knobs: dict[str, str]) -> dict:
    """A standard run's overrides, or the ones the make variables ask for (LORA_R keeps the profile's alpha / r);
    never other settings under a standard run's name (make and notebook 05 would take them for the standard run)."""
    standard = named_runs(config)
    given = {k: v for k, v in knobs.items() if v}
    if not given:
        if name not in standard:
            raise SystemExit(f"ablation '{name}' is not standard ({sorted(standard)}); "
                             f"give parameters, e.g. LORA_R=32, HELDOUT=finance, NO_PERSONA=1, QUANT=none, FULL=1")
        return standard[name]
    out = {}
    for knob, value in given.items():
        if knob not in KNOBS:
            raise SystemExit(f"unknown ablation knob {knob}; known: {sorted(KNOBS)}")
        if knob == "LORA_R":
            out.update(rank_overrides(config, int(value)))
        elif knob == "NO_PERSONA":
            out["ablation.include_persona"] = value.lower() not in ("1", "true", "yes")
        elif knob == "EPOCHS":
            out["training.epochs"] = float(value)
        elif knob in ("RESPONDENTS", "TOP_LAYERS"):
            out[KNOBS[knob]] = int(value)
        elif knob == "QUANT":
            out.update({"training.quantization": value} | ({"training.compute_dtype": "float32"}
                                                              if value == "none" else {}))
        elif knob == "FULL":  # whole splits instead of the ablation subset (slow on CPU; not comparable)
            if value.lower() in ("1", "true", "yes"):
                out.update({f"ablation_runs.{split}_personas": None for split in ("train", "val", "test")})
        else:
            out[KNOBS[knob]] = value
    if name in standard and out != standard[name]:
        raise SystemExit(f"ablation '{name}' is a standard run with other settings ({standard[name]}): rename it")
    return out
