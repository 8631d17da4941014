"""Generation: one row per record, parsed closed answers, resume after an interruption, the HTTP backend."""
import json

from polypersona_utils import paths
from polypersona_utils.dataset.prompts import build_messages, record_messages
from polypersona_utils.modeling.generation import Variant, generate_all, generate_predictions, variants
from polypersona_utils.provenance import read_jsonl

from conftest import tiny_config


def tiny_variant(model_dir):
    return Variant("tiny-zeroshot", str(model_dir), None, None, None)


def test_variants_are_zero_shot_and_adapter_per_trained_model():
    from polypersona_utils.config import load_config

    names = [v.name for v in variants(load_config("paper"))]
    assert names[:4] == ["tinyllama-1.1b-zeroshot", "tinyllama-1.1b-lora", "phi-2-zeroshot", "phi-2-lora"]
    assert "mistral-7b-instruct-zeroshot" in names and "mistral-7b-instruct-lora" not in names


def test_generation_prompt_is_the_training_prompt(smoke_data):
    record = smoke_data.splits["test"][0]
    assert record_messages(record) == record["messages"][:2]
    assert record_messages(record) == build_messages(record["persona"], record["domain"], record["question"],
                                               record["question_type"], record["options"])


def test_generation_rows_parse_and_resume_after_an_interruption(smoke_data, tiny_model_dir):
    config = tiny_config(tiny_model_dir, **{"generation.batch_size": 2})
    variant = tiny_variant(tiny_model_dir)
    test_ids = sorted(r["id"] for r in smoke_data.splits["test"])
    first = generate_predictions(config, variant, progress=False)
    rows = read_jsonl(first)
    assert [r["id"] for r in rows] == test_ids
    for row, record in zip(rows, sorted(smoke_data.splits["test"], key=lambda r: r["id"])):
        if record["options"]:
            assert (row["parsed_option"] in record["options"]) != row["unparseable"]
        else:
            assert row["parsed_option"] is None and not row["unparseable"]
    expected = first.read_bytes()
    log = paths.cache_dir("smoke") / "predictions" / "tiny-zeroshot.jsonl"
    lines = log.read_text().splitlines(keepends=True)
    log.write_text("".join(lines[:1]) + lines[1][:20])  # killed after one record, mid-write of the next
    first.unlink()
    again = generate_predictions(config, variant, progress=False)
    assert again.read_bytes() == expected  # same answers as the uninterrupted run
    keys = [json.loads(line)["key"] for line in log.read_text().splitlines()]
    assert len(keys) == len(set(keys)) == len(test_ids)  # no duplicate, no gap


def test_a_rerun_with_every_answer_cached_loads_no_model(smoke_data, tiny_model_dir, monkeypatch):
    from polypersona_utils.llm import models

    config = tiny_config(tiny_model_dir, **{"generation.batch_size": 2})
    variant = tiny_variant(tiny_model_dir)
    first = generate_predictions(config, variant, progress=False).read_bytes()

    def no_model(*args, **kwargs):
        raise AssertionError("a model was loaded although every answer was cached")

    monkeypatch.setattr(models, "merged_model", no_model)
    assert generate_predictions(config, variant, progress=False).read_bytes() == first


def test_http_generator_gives_the_same_records(smoke_data, openai_server):
    from polypersona_utils.config import load_config

    url, seen = openai_server
    config = load_config("smoke", overrides={"models": [{"name": "served", "model_id": "served", "backend": "http",
                                                         "http_url": url, "train": False}]})
    [variant] = variants(config)  # a served model from the profile: zero-shot through the endpoint, no model loaded
    assert variant == Variant("served-zeroshot", "served", None, None, None, True, url)
    rows = read_jsonl(generate_all(config, progress=False)["served-zeroshot"])
    assert [r["id"] for r in rows] == sorted(r["id"] for r in smoke_data.splits["test"])
    assert len(seen) == len(rows)
    assert set(rows[0]) == {"id", "prediction", "parsed_option", "unparseable", "variant", "split"}
    records = {r["id"]: r for r in smoke_data.splits["test"]}
    for row in rows:  # the fake server says "Yes, I do. Every month." to every closed question
        options = records[row["id"]]["options"]
        if not options:
            assert row["prediction"] == "I walk a lot. Then I rea" and not row["unparseable"]
        elif "Yes" in options:
            assert row["parsed_option"] == "Yes"
        else:
            assert row["unparseable"] and row["parsed_option"] is None  # kept and flagged, never guessed


def test_batches_that_do_not_fit_in_memory_are_split():
    from polypersona_utils.modeling.generation import generate_fitting_memory

    calls = []

    def generate(chats, seed):
        calls.append(len(chats))
        if len(chats) > 3:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return [f"answer to {c}" for c in chats]

    chats = [f"q{i}" for i in range(10)]
    assert generate_fitting_memory(generate, chats, seed=1) == [f"answer to {c}" for c in chats]
    assert calls[:3] == [10, 5, 2]  # halved until it fits, order kept

    def broken(chats, seed):
        raise RuntimeError("shape mismatch")

    import pytest

    with pytest.raises(RuntimeError, match="shape mismatch"):  # other errors are not swallowed
        generate_fitting_memory(broken, chats, seed=1)


def test_records_with_identical_prompts_get_their_own_answers_and_ids(smoke_data, tiny_model_dir):
    # Without the persona card, two personas asked the same question send the same prompt. Each record still gets
    # its own generation (a sampled answer per respondent, as in a survey) under its own id.
    from collections import Counter

    from polypersona_utils.dataset.splits import load_split

    config = tiny_config(tiny_model_dir, **{"ablation.include_persona": False, "run": "no-persona",
                                            "ablation_runs.train_personas": None,
                                            "generation.max_new_tokens": {"open": 4, "likert": 4, "yesno": 4,
                                                                          "agreement": 4}})
    records = load_split(config, "train")
    assert max(Counter(r["question_id"] for r in records).values()) > 1  # some prompts repeat
    variant = variants(config)[0]
    rows = read_jsonl(generate_predictions(config, variant, split="train", progress=False))
    assert [r["id"] for r in rows] == sorted(r["id"] for r in records)
    logged = read_jsonl(paths.cache_dir(config.profile) / "predictions" / f"{variant.name}.jsonl")
    assert len(logged) == len(records)



def test_tables_name_the_base_each_variant_is_evaluated_on():
    """A QLoRA profile evaluates every local variant on the NF4 base (the zero-shot one too: the GGUF re-quantised),
    an unquantised one on the GGUF de-quantised; the tables say which."""
    zeroshot = Variant("m-zeroshot", "smollm2-135m-instruct", None, None, None)
    lora = Variant("m-lora", "smollm2-135m-instruct", None, None, "artifacts/adapters/m")
    served = Variant("s-zeroshot", "big", None, None, None, http_url="http://127.0.0.1:1/v1")
    assert (zeroshot.base_label("nf4"), lora.base_label("nf4")) == ("NF4 (GGUF re-quantised)",
                                                                    "NF4 (GGUF re-quantised) + LoRA")
    assert lora.base_label("none") == "GGUF de-quantised, 16/32-bit + LoRA" and served.base_label("nf4") == "served"
