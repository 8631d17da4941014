import pytest

from polypersona_utils import paths
from polypersona_utils.config import ConfigError, load_config


def write(tmp_path, text):
    path = tmp_path / "x.yaml"  # the profile name is the file's: `profile: x`
    path.write_text(text)
    return path


@pytest.mark.parametrize("profile", ["default", "smoke", "paper"])
def test_shipped_profiles_load(profile):
    config = load_config(profile)
    assert config.profile == profile
    assert config.lora.r == 16 and config.lora.alpha == 32
    # the paper's dropout; the CPU profiles leave it out (21 % of a training step there)
    assert config.lora.dropout == (0.05 if profile == "paper" else 0.0)


def test_paper_profile_has_the_papers_settings():
    c = load_config("paper")
    assert c.personas.n_personas == 433
    assert sum(c.questions.per_persona_counts(c.personas.n_personas)) == 3568
    assert [m.model_id for m in c.models if m.train] == ["TinyLlama/TinyLlama-1.1B-Chat-v1.0", "microsoft/phi-2"]
    assert all(m.revision and len(m.revision) == 40 for m in c.models)
    t = c.training
    assert (t.quantization, t.learning_rate, t.epochs, t.per_device_batch_size, t.gradient_accumulation_steps,
            t.lr_scheduler, t.warmup_ratio, t.max_grad_norm) == ("nf4", 2e-4, 3.0, 4, 4, "cosine", 0.03, 0.3)
    assert (c.generation.temperature, c.generation.top_p) == (0.7, 0.9)


def test_unknown_key_names_key_and_file(tmp_path):
    path = write(tmp_path, "profile: x\nlora:\n  rank: 8\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "lora.rank" in str(err.value) and str(path) in str(err.value)


def test_unknown_top_level_key(tmp_path):
    with pytest.raises(ConfigError, match="learning_rate: unknown key"):
        load_config(write(tmp_path, "profile: x\nlearning_rate: 0.1\n"))


def test_wrong_type_names_key(tmp_path):
    with pytest.raises(ConfigError, match=r"personas\.n_personas: expected an integer, got 'many'"):
        load_config(write(tmp_path, "profile: x\npersonas:\n  n_personas: many\n"))


def test_bool_is_not_an_integer(tmp_path):
    with pytest.raises(ConfigError, match="expected an integer"):
        load_config(write(tmp_path, "profile: x\nlora:\n  r: true\n"))


def test_impossible_values(tmp_path):
    with pytest.raises(ConfigError, match="splits.train/val/test: must be non-negative and sum to 1"):
        load_config(write(tmp_path, "profile: x\nsplits:\n  train: 0.9\n  val: 0.1\n  test: 0.1\n"))
    with pytest.raises(ConfigError, match="lora.dropout"):
        load_config(write(tmp_path, "profile: x\nlora:\n  dropout: 1.5\n"))
    with pytest.raises(ConfigError, match="must be one of"):
        load_config(write(tmp_path, "profile: x\ntraining:\n  quantization: int3\n"))


def test_profile_name_comes_from_the_file_and_bad_yaml_is_named(tmp_path):
    assert load_config(write(tmp_path, "description: no profile key\n")).profile == "x"
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path, "profile: [unclosed\n"))
    with pytest.raises(ConfigError, match="x.yaml: empty profile file"):
        load_config(write(tmp_path, ""))


def test_a_copied_profile_keeping_the_original_name_is_refused(tmp_path):
    """`cp params/smoke.yaml params/mytiny.yaml` without editing `profile:` would write into smoke's folders."""
    copy = tmp_path / "mytiny.yaml"
    copy.write_text(paths.params_file("smoke").read_text())
    with pytest.raises(ConfigError, match=r"mytiny.yaml: profile: 'smoke' differs from the file name"):
        load_config(copy)
    copy.write_text(paths.params_file("smoke").read_text().replace("profile: smoke", "profile: mytiny"))
    assert load_config(copy).profile == "mytiny"
    with pytest.raises(ConfigError, match="profile: set by its file name"):
        load_config("smoke", overrides={"profile": "default"})


@pytest.mark.parametrize("yaml_text, message", [
    ("training:\n  epochs: .nan\n", r"training.epochs: must be a finite number, got nan"),
    ("training:\n  epochs: .inf\n", r"training.epochs: must be a finite number, got inf"),
    ("splits:\n  train: .nan\n", r"splits.train: must be a finite number"),
    ("generation:\n  max_new_tokens: {open: -5, likert: 8, yesno: 4, agreement: 8}\n",
     r"generation.max_new_tokens \(each\) and batch_size: must be at least 1, got \{'open': -5\}"),
    ("generation:\n  max_new_tokens: {open: 5, likert: 8, yesno: 4, agreement: 8, essay: 9}\n",
     r"unknown question types \['essay'\]"),
    ("training:\n  lr_scheduler: cosinus\n", r"training.lr_scheduler: must be one of \['linear', 'cosine'"),
    ("models:\n  - name: tl\n    model_id: TinyLlama/TinyLlama-1.1B-Chat-v1.0\n",
     r"models\[0\].revision: required for the hub model 'TinyLlama/TinyLlama-1.1B-Chat-v1.0'"),
    ("references:\n  teacher_model: Qwen/Qwen2.5-0.5B-Instruct\n", r"references.teacher_revision: required"),
    ("lora:\n  r: 8\n  r: 16\n", r"duplicate key 'r' \(first on line 3\)"),
])
def test_impossible_values_are_refused_naming_file_and_key(tmp_path, yaml_text, message):
    with pytest.raises(ConfigError, match=message) as err:
        load_config(write(tmp_path, "profile: x\n" + yaml_text))
    assert str(tmp_path / "x.yaml") in str(err.value)


def test_every_allowed_scheduler_is_one_transformers_has():
    import typing

    from transformers import SchedulerType

    from polypersona_utils.config_sections import TrainingConfig

    allowed = typing.get_args(typing.get_type_hints(TrainingConfig)["lr_scheduler"])
    assert set(allowed) <= {s.value for s in SchedulerType}


def test_missing_profile_lists_available():
    with pytest.raises(ConfigError, match="available profiles: .*'smoke'"):
        load_config("no-such-profile")


def test_overrides_change_one_value_and_are_validated():
    config = load_config("smoke", overrides={"lora.r": 32})
    assert config.lora.r == 32 and config.lora.alpha == 32
    with pytest.raises(ConfigError, match="lora.r: expected an integer"):
        load_config("smoke", overrides={"lora.r": "big"})


def test_question_bank_path_is_package_anchored():
    assert load_config("smoke").questions.bank_path == paths.QUESTION_BANK


def test_ablation_subset_sizes_are_validated(tmp_path):
    with pytest.raises(ConfigError, match="ablation_runs.train_personas: must be at least 1 or null"):
        load_config(write(tmp_path, "profile: x\nablation_runs:\n  train_personas: 0\n"))
    config = load_config("default", overrides={"ablation_runs.test_personas": None})
    assert config.ablation_runs.test_personas is None and config.ablation_runs.train_personas == 8


def test_a_held_out_domain_is_checked_against_the_question_bank():
    from polypersona_utils.dataset.questions import load_question_bank

    domains = load_question_bank(paths.QUESTION_BANK).domains
    assert load_config("smoke", overrides={"ablation.heldout_domain": domains[-1]}).ablation.heldout_domain
    with pytest.raises(ConfigError, match=r"ablation.heldout_domain: must be one of the question bank's domains"):
        load_config("smoke", overrides={"ablation.heldout_domain": "astrology"})
