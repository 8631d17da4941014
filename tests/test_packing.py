"""Respondent packing (`packing`, `packed_trainer`): the tree layout by hand, and the packed loss and LoRA gradients
equal to the per-record ones, for both objectives, on real study prompts and a model with wide random weights (so a
position off by one, a token that sees another item, or a prompt token let into the loss changes the numbers)."""
import pytest
import torch

from polypersona_utils.modeling.packing import IGNORE, PackedItem, pack_items, packed_batch

from conftest import tiny_config

SPENDING = ["Too little", "About right", "Too much"]
# float32 throughout: losses agree to about 1e-6 relative (measured), gradients to about 2e-6 of their largest element
TOLERANCE = dict(rel=1e-5)


def test_a_respondent_by_hand():
    """Two items sharing [1, 2]; item b has two turns (options), item a one; a batch of it and a one-item row."""
    a = PackedItem((1, 2, 3, 9), ((7, 8),))
    b = PackedItem((1, 2, 4, 4, 9), ((5,), (6,)), target=1)
    row = pack_items([a, b])
    assert row == {"root": [1, 2], "stems": [[3], [4, 4]], "turns": [[9, 7, 8], [9, 5], [9, 6]],
                   "turn_items": [0, 1, 1], "item_targets": [-1, 1]}
    batch = packed_batch([row, pack_items([PackedItem((1, 5), ((6,),))])], pad_id=0)
    assert batch["root_ids"].tolist() == [[1, 2], [1, 0]] and batch["root_mask"].tolist() == [[1, 1], [1, 0]]
    # the second respondent's one item has an empty stem: its root is the prompt but the last token
    assert batch["stem_ids"].tolist() == [[3, 0], [4, 4], [0, 0]] and batch["stem_parent"].tolist() == [0, 0, 1]
    assert batch["turn_parent"].tolist() == [0, 1, 1, 2]
    assert batch["labels"].tolist() == [[IGNORE, 7, 8], [IGNORE, 5, IGNORE], [IGNORE, 6, IGNORE], [IGNORE, 6, IGNORE]]
    assert batch["item_turns"].tolist() == [[0, -1], [1, 2], [3, -1]] and batch["item_targets"].tolist() == [-1, 1, -1]
    assert int(batch["packed_tokens"]) == 2 + 3 + 3 + 2 + 2 + 1 + 0 + 2


def wide_peft_model(tiny_model_dir):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoConfig, AutoModelForCausalLM

    wide = AutoConfig.from_pretrained(tiny_model_dir)
    wide.initializer_range = 0.5
    torch.manual_seed(0)
    return get_peft_model(AutoModelForCausalLM.from_config(wide), LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"], init_lora_weights=False))


def close(a, b) -> bool:
    """Every element within 1e-5 of the gradient's largest magnitude (float32 sums in another order)."""
    return bool((a - b).abs().max() <= 1e-5 * b.abs().max()) and bool(b.abs().max() > 0)


def lora_grads(model) -> dict:
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    return grads


def respondents_records(smoke_data, count: int = 3):
    """The first `count` personas' training records (the smoke split: persona cards, open and closed)."""
    records = smoke_data.splits["train"]
    personas = sorted({r["persona_id"] for r in records})[:count]
    return [r for r in records if r["persona_id"] in personas]


def test_packed_sft_loss_and_lora_gradients_equal_the_per_record_ones(smoke_data, tiny_model_dir, tmp_path):
    """Several respondents in one packed batch against the same records in one TRL-tokenized per-record batch."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from polypersona_utils.dataset.prompts import prompt_completion
    from polypersona_utils.llm import models
    from polypersona_utils.modeling.answer_loss import answer_loss
    from polypersona_utils.modeling.packed_trainer import answers_in, packed_rows
    from polypersona_utils.modeling.packing import sft_loss

    records = respondents_records(smoke_data)
    tokenizer = models.load_tokenizer(str(tiny_model_dir))
    model = wide_peft_model(tiny_model_dir)
    rows = packed_rows(records, tokenizer, "sft", True, 384)
    assert len(rows) == 3 and answers_in(rows) == len(records)
    packed = packed_batch(rows, tokenizer.pad_token_id)
    packed_loss = sft_loss(model, packed)
    packed_loss.backward()
    packed_grads = lora_grads(model)

    # TRL's own per-record tokenization and collation (what the per-record path trains on)
    trainer = SFTTrainer(model=model, args=SFTConfig(output_dir=str(tmp_path), max_length=384, report_to=[],
                                                     completion_only_loss=True, use_cpu=True),
                         train_dataset=Dataset.from_list([prompt_completion(r) for r in records]),
                         processing_class=tokenizer)
    plain = trainer.data_collator([trainer.train_dataset[i] for i in range(len(records))])
    assert int((plain["labels"][:, 1:] != IGNORE).sum()) == int((packed["labels"][:, 1:] != IGNORE).sum())
    plain_loss = answer_loss(model, plain)
    plain_loss.backward()
    plain_grads = lora_grads(model)
    assert float(packed_loss) == pytest.approx(float(plain_loss), **TOLERANCE)
    assert packed_grads.keys() == plain_grads.keys() and len(packed_grads) == 2 * 3 * 2  # A, B x 3 modules x 2 layers
    for name, grad in plain_grads.items():
        assert close(packed_grads[name], grad), name
    # the same tokens with each stem's parent moved to another respondent (a record reading another card) give
    # another loss: the comparison can fail
    leaky = dict(packed, stem_parent=packed["stem_parent"].roll(1))
    assert float(sft_loss(model, leaky)) != pytest.approx(float(plain_loss), **TOLERANCE)


def test_packed_option_loss_equals_one_full_forward_per_option(tiny_model_dir):
    """The option objective on a packed batch of two respondents (two and three items, options in both orders)
    against the per-record scores (`option_scoring.full_forward_log_probs`), and its LoRA gradients against the
    per-record path's (`option_training.option_loss`, one respondent a call)."""
    from polypersona_utils.llm import models
    from polypersona_utils.llm.option_scoring import full_forward_log_probs
    from polypersona_utils.modeling.option_training import option_loss as per_record_option_loss
    from polypersona_utils.modeling.packed_trainer import packed_rows
    from polypersona_utils.modeling.packing import option_loss, option_scores

    tokenizer = models.load_tokenizer(str(tiny_model_dir))
    model = wide_peft_model(tiny_model_dir)
    persona = {"age": 40, "gender": "woman", "occupation": "nurse", "education": "bachelor's degree",
               "region": "Ohio", "income_bracket": "$50,000-$74,999", "values": ["family"], "traits": ["calm"],
               "interests": ["gardening"]}
    records = []
    for who, (politics, questions) in enumerate([("Democrat, liberal", ["health", "roads", "space"]),
                                                  ("Republican, conservative", ["health", "crime"])]):
        for q, topic in enumerate(questions):
            options = SPENDING if q % 2 == 0 else SPENDING[::-1]
            records.append({"id": f"r{who}-{q}", "persona_id": f"p{who}", "persona": dict(
                persona, political_identity=politics), "domain": "healthcare" if q < 2 else "public_safety",
                            "question": f"Are we spending too much on {topic}?", "question_type": "likert",
                            "options": options, "reference": options[q % 3]})
    rows = packed_rows(records, tokenizer, "option_likelihood", True, 384)
    batch = packed_batch(rows, tokenizer.pad_token_id)
    scores = option_scores(model, batch)
    from polypersona_utils.dataset.prompts import record_messages
    for row, record in zip(scores.tolist(), sorted(records, key=lambda r: (r["persona_id"], r["id"]))):
        assert row == pytest.approx(full_forward_log_probs(model, tokenizer, record_messages(record), record["options"]),
                                    abs=1e-4)
    option_loss(model, batch).backward()
    packed_grads = lora_grads(model)
    per_record = [per_record_option_loss(model, tokenizer, [r for r in records if r["persona_id"] == p])
                  for p in ("p0", "p1")]
    (sum(loss * n for loss, n in zip(per_record, (3, 2))) / 5).backward()  # the mean over all five items
    for name, grad in lora_grads(model).items():
        assert close(packed_grads[name], grad), name


def top_layer_model(tiny_model_dir, family: str):
    """A 3-layer model with wide random weights and LoRA on its top layer: SmolLM2's Llama, or Gemma 3 with a
    4-token sliding window on layers 0 and 2 (so a mask built from the wrong cache sizes shows)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoConfig, AutoModelForCausalLM, Gemma3ForCausalLM, Gemma3TextConfig

    llama = AutoConfig.from_pretrained(tiny_model_dir)
    torch.manual_seed(0)
    if family == "llama":
        llama.num_hidden_layers, llama.initializer_range = 3, 0.5
        model = AutoModelForCausalLM.from_config(llama)
    else:
        model = Gemma3ForCausalLM(Gemma3TextConfig(
            vocab_size=llama.vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
            num_attention_heads=4, num_key_value_heads=2, head_dim=8, sliding_window=4,
            layer_types=["sliding_attention", "full_attention", "sliding_attention"], max_position_embeddings=1024,
            pad_token_id=llama.pad_token_id, bos_token_id=llama.bos_token_id, eos_token_id=llama.eos_token_id,
            initializer_range=0.5))
    model.set_attn_implementation("eager")  # as PackedTrainer
    return get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"],
                                            layers_to_transform=[2], layers_pattern="layers", init_lora_weights=False))


@pytest.mark.parametrize("family", ["llama", "gemma3"])
@pytest.mark.parametrize("objective", ["sft", "option_likelihood"])
def test_cached_lower_layer_states_give_the_uncached_loss_and_lora_gradients(smoke_data, tiny_model_dir, family,
                                                                           objective):
    """LoRA on the top layer of three: the two frozen layers' states computed once (`lower_cache`) and the top layer
    run from them give the loss and LoRA gradients of the full forward, for both objectives and both families; the
    lower layers are not run (changing their weights afterwards leaves the cached loss as it was), and states
    handed to the wrong turns give another loss (the comparison can fail)."""
    from polypersona_utils.llm import models
    from polypersona_utils.modeling.lower_cache import StatesCollator, lower_layers_passed, lower_states
    from polypersona_utils.modeling.packed_trainer import packed_rows
    from polypersona_utils.modeling.packing import option_loss, sft_loss

    loss_of = sft_loss if objective == "sft" else option_loss
    tokenizer = models.load_tokenizer(str(tiny_model_dir))
    model = top_layer_model(tiny_model_dir, family)
    records = [r for r in respondents_records(smoke_data) if objective == "sft" or r["options"]]
    rows = [dict(row, key=str(i)) for i, row in enumerate(packed_rows(records, tokenizer, objective, True, 384))]
    assert len(rows) == 3
    pad = tokenizer.pad_token_id
    plain_loss = loss_of(model, packed_batch(rows, pad))
    plain_loss.backward()
    plain_grads = lora_grads(model)
    assert plain_grads and all(".layers.2." in name for name in plain_grads)

    # Llama: the states computed in other batches than the step's (other padding); Gemma 3: in the step's batch, as
    # its sliding window counts padded slots (HF's masks do), so that with a 4-token window the states depend on the
    # batch's padding (the real model's 512-token window is longer than any packed level: there they do not)
    size = 2 if family == "llama" else 3
    states = dict(zip((r["key"] for r in rows), lower_states(model, rows, pad, lower=2, batch_size=size)))
    batch = StatesCollator(pad, states)(rows)
    with lower_layers_passed(model, 2):
        cached_loss = loss_of(model, batch)
    cached_loss.backward()
    cached_grads = lora_grads(model)
    assert float(cached_loss) == pytest.approx(float(plain_loss), **TOLERANCE)
    assert cached_grads.keys() == plain_grads.keys()
    for name, grad in plain_grads.items():
        assert close(cached_grads[name], grad), name

    with torch.no_grad():
        for name, weight in model.named_parameters():
            if ".layers.0." in name or ".layers.1." in name:
                weight.mul_(1.5)
        assert float(loss_of(model, packed_batch(rows, pad))) != pytest.approx(float(plain_loss), **TOLERANCE)
        with lower_layers_passed(model, 2):
            assert float(loss_of(model, batch)) == float(cached_loss)
            swapped = dict(batch, turn_states=batch["turn_states"].roll(1, dims=0))
            assert float(loss_of(model, swapped)) != pytest.approx(float(plain_loss), **TOLERANCE)


def test_stored_lower_layer_states_are_read_back_and_a_missing_chunk_alone_is_computed(smoke_data, tiny_model_dir,
                                                                                         tmp_path, monkeypatch):
    """`lower_states(store=...)`: the states written a chunk a file equal the ones computed without a store; a
    second call reads every chunk back without running the model; a chunk lost (a run killed while computing it) is
    the only one computed again, and so is one cut short or stored for another `lower`; a turn following another
    item changes the row's signature; a chunk that is not a multiple of the batch is refused (its batches would
    differ)."""
    from polypersona_utils.llm import models
    from polypersona_utils.modeling import lower_cache
    from polypersona_utils.modeling.packed_trainer import packed_rows

    tokenizer = models.load_tokenizer(str(tiny_model_dir))
    model = top_layer_model(tiny_model_dir, "llama")
    rows = packed_rows(respondents_records(smoke_data), tokenizer, "sft", True, 384)
    assert len(rows) == 3
    pad = tokenizer.pad_token_id
    plain = lower_cache.lower_states(model, rows, pad, lower=2, batch_size=1)
    store = tmp_path / "states"
    stored = lower_cache.lower_states(model, rows, pad, lower=2, batch_size=1, store=store, chunk=2)
    assert sorted(f.name for f in store.iterdir()) == ["000000.pt", "000002.pt"]

    def same(a, b):
        return all(torch.equal(x[level], y[level]) if level == "root" else
                   all(torch.equal(u, v) for u, v in zip(x[level], y[level]))
                   for x, y in zip(a, b) for level in ("root", "stems", "turns")) and len(a) == len(b)
    assert same(stored, plain)
    computed = []
    original = lower_cache._computed_states
    monkeypatch.setattr(lower_cache, "_computed_states", lambda m, part, *a: computed.append(len(part))
                        or original(m, part, *a))
    assert same(lower_cache.lower_states(model, rows, pad, lower=2, batch_size=1, store=store, chunk=2), plain)
    assert computed == []  # all read back
    (store / "000002.pt").unlink()
    assert same(lower_cache.lower_states(model, rows, pad, lower=2, batch_size=1, store=store, chunk=2), plain)
    assert computed == [1] and (store / "000002.pt").exists()  # the lost chunk (one row) alone, stored again
    halves = lower_cache.lower_states(model, rows, pad, lower=2, batch_size=1, store=store, chunk=1)
    assert same(halves, plain) and computed == [1, 1, 1]  # chunk 1: 000000.pt held rows 0-1, recomputed; row 1 has
    #                                                        no file yet; 000002.pt holds row 2 alone: read back
    cut = (store / "000002.pt").read_bytes()
    (store / "000002.pt").write_bytes(cut[:len(cut) // 2])  # cut short by a crash: unreadable, computed again
    assert same(lower_cache.lower_states(model, rows, pad, lower=2, batch_size=1, store=store, chunk=1), plain)
    assert computed == [1, 1, 1, 1] and (store / "000002.pt").read_bytes() == cut
    below = lower_cache.lower_states(model, rows, pad, lower=1, batch_size=1, store=store, chunk=1)
    assert computed == [1, 1, 1, 1, 1, 1, 1] and not same(below, plain)  # another `lower`: every file computed again
    moved = [dict(row) for row in rows]  # the same tokens, a turn following another item: another signature
    moved[0]["turn_items"] = [1 - i if i < 2 else i for i in moved[0]["turn_items"]]
    assert lower_cache.row_signature(moved[0]) != lower_cache.row_signature(rows[0])
    assert not list(store.glob(".*.tmp"))  # no temporary file left behind
    with pytest.raises(ValueError, match="chunk .3. must be a multiple of batch_size .2."):
        lower_cache.lower_states(model, rows, pad, lower=2, batch_size=2, store=store, chunk=3)


@pytest.mark.parametrize("objective", ["sft", "option_likelihood"])
def test_notebook_02s_packed_path_trains_every_answer_and_moves_lora_weights_only(smoke_data, tiny_model_dir,
                                                                                  objective):
    """`training.packing: respondent` through `train_model`: one packed row per persona, every record (SFT) or
    every closed record (option likelihood) trained on, a validation loss, only LoRA weights saved and moved; the
    setting enters the fingerprint (the record default does not: adapters trained before keep theirs)."""
    from safetensors.torch import load_file

    from polypersona_utils.modeling.training import adapter_settings, train_model

    config = tiny_config(tiny_model_dir, **{"training.packing": "respondent", "training.objective": objective})
    result = train_model(config, config.models[0], progress=False)
    train = smoke_data.splits["train"]
    assert result.metrics["train_examples"] == sum(1 for r in train if objective == "sft" or r["options"])
    personas = len({r["persona_id"] for r in train if objective == "sft" or r["options"]})
    assert config.training.epochs == 1 and config.training.gradient_accumulation_steps == 1
    assert result.metrics["global_steps"] == -(-personas // config.training.per_device_batch_size)  # respondents
    assert result.metrics["val_loss"] and result.metrics["train_loss"] > 0
    weights = load_file(result.run_dir / "adapter_model.safetensors")
    assert weights and all("lora_" in n for n in weights) and any(w.abs().sum() > 0 for n, w in weights.items()
                                                                  if "lora_B" in n)
    assert adapter_settings(config)["training"]["packing"] == "respondent"
    assert "packing" not in adapter_settings(tiny_config(tiny_model_dir))["training"]


def test_the_packing_knob_names_one_ablation_run():
    from polypersona_utils.config import load_config
    from polypersona_utils.runs.ablations import overrides_for

    config = load_config("smoke")
    assert overrides_for(config, "packed-512", {"PACKING": "respondent", "RESPONDENTS": "4"}) == {
        "training.packing": "respondent", "ablation.training_respondents": 4}
    with pytest.raises(Exception, match="packing"):
        load_config("smoke", overrides={"training.packing": "by-item"})


def test_training_from_cached_lower_layer_states_gives_the_adapter_of_the_full_forward(smoke_data, tiny_model_dir,
                                                                                      monkeypatch):
    """`lora.top_layers: 1` on the packed path, two epochs, through `train_model`: the frozen layer's states are
    computed once (`PackedTrainer(lower_cached=1)`), and the adapter, losses and step count equal those of the same
    run with every layer run at every step, up to float rounding."""
    from safetensors.torch import load_file

    from polypersona_utils.modeling import training

    config = tiny_config(tiny_model_dir, **{"training.packing": "respondent", "lora.top_layers": 1,
                                            "training.epochs": 2})
    from polypersona_utils.modeling import packed_trainer

    seen, stores = [], []
    original = training.frozen_below
    monkeypatch.setattr(training, "frozen_below", lambda *a: seen.append(original(*a)) or seen[-1])
    states = packed_trainer.lower_states

    def stored_states(*args, store, **kwargs):
        out = states(*args, store=store, **kwargs)
        stores.append((store, sorted(f.name for f in store.iterdir())))
        return out
    monkeypatch.setattr(packed_trainer, "lower_states", stored_states)
    cached = training.train_model(config, config.models[0], run_name="cached", progress=False)
    monkeypatch.setattr(training, "frozen_below", lambda *a: seen.append(0) or 0)
    plain = training.train_model(config, config.models[0], run_name="plain", progress=False)
    assert seen == [1, 0]
    assert cached.metrics["lower_states_s_this_session"] > 0 == plain.metrics["lower_states_s_this_session"]
    assert stores[0] == (cached.run_dir / "checkpoints" / "lower_states" / "1-b4-fp32" / "train", ["000000.pt"])
    assert not stores[0][0].exists()  # kept on disk while the run trained, removed with the checkpoints
    assert cached.metrics["global_steps"] == plain.metrics["global_steps"] > 1
    assert cached.metrics["train_loss"] == pytest.approx(plain.metrics["train_loss"], rel=1e-4)
    assert cached.metrics["val_loss"] == pytest.approx(plain.metrics["val_loss"], rel=1e-4)
    ours, theirs = (load_file(r.run_dir / "adapter_model.safetensors") for r in (cached, plain))
    assert ours.keys() == theirs.keys() and all(".layers.1." in name for name in ours)
    for name, weight in theirs.items():
        assert (ours[name] - weight).abs().max() <= 1e-4 * weight.abs().max(), name
