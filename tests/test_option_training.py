"""The option-likelihood objective (`training.objective: option_likelihood`): differentiable option scores equal the
plain ones, the loss moves LoRA weights only, and training raises the probability of the options it is shown."""
import numpy as np
import pytest

from conftest import tiny_config

SPENDING = ["Too little", "About right", "Too much"]


def chat(card_line: str, question: str):
    from polypersona_utils.dataset.prompts import build_messages

    persona = {"age": 40, "gender": "woman", "occupation": "nurse", "education": "bachelor's degree",
               "region": "Ohio", "income_bracket": "$50,000-$74,999", "political_identity": card_line,
               "values": ["family"], "traits": ["calm"], "interests": ["gardening"]}
    return persona, build_messages(persona, "healthcare", question, "likert", SPENDING)


def test_the_differentiable_scores_equal_the_plain_ones_and_carry_gradients_to_lora_only(tiny_model_dir):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from polypersona_utils.llm import models
    from polypersona_utils.llm.option_scoring import full_forward_log_probs, option_log_prob_tensor

    tokenizer = models.load_tokenizer(str(tiny_model_dir))
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                           LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    chats = [chat("Democrat, liberal", q)[1] for q in ("Spending on health?", "Spending on roads and bridges?")]
    scores = option_log_prob_tensor(model, tokenizer, chats, [SPENDING, SPENDING])
    for row, one in zip(scores.tolist(), chats):
        assert row == pytest.approx(full_forward_log_probs(model, tokenizer, one, SPENDING), abs=1e-4)
    torch.nn.functional.cross_entropy(scores, torch.tensor([0, 2])).backward()
    grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    assert grads and all("lora_" in n for n in grads) and any(g.abs().sum() > 0 for g in grads.values())


def test_option_likelihood_training_raises_the_probability_of_the_answers_it_is_shown(tiny_model_dir, tmp_roots):
    import torch
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM

    from polypersona_utils.llm import models
    from polypersona_utils.llm.option_scoring import option_log_probs
    from polypersona_utils.modeling.option_training import OptionLikelihoodTrainer, option_groups

    config = tiny_config(tiny_model_dir, **{"training.objective": "option_likelihood", "training.epochs": 60.0, "training.lr_scheduler": "constant",
                                            "training.warmup_ratio": 0.0})
    records = []
    for p, party in enumerate(("Democrat, liberal", "Republican, conservative")):
        for q, question in enumerate(("Spending on health?", "Spending on schools?", "Spending on parks?")):
            persona, messages = chat(party, question)
            records.append({"id": f"p{p}--q{q}", "persona_id": f"p{p}", "persona": persona, "domain": "healthcare",
                            "question": question, "question_type": "likert", "options": SPENDING,
                            "reference": SPENDING[0] if p == 0 else SPENDING[2]})
    records.append(dict(records[0], id="p0--open", options=[], question_type="open", reference="Words."))
    assert [len(g) for g in option_groups(records)] == [3, 3]  # one step per persona; open records unused
    tokenizer = models.load_tokenizer(str(tiny_model_dir))
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    lora = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "up_proj", "down_proj"])
    trainer = OptionLikelihoodTrainer(model, tokenizer, lora, records, config, eval_records=records[:3])
    trainer.train()
    assert trainer.state.global_step == 120 and trainer.examples == 6
    assert [h for h in trainer.state.log_history if "eval_loss" in h]
    after = dict(trainer.model.named_parameters())

    def peft_name(name):  # PEFT moves a wrapped layer's own weight to `<layer>.base_layer.weight`
        layer, _, kind = f"base_model.model.{name}".rpartition(".")
        return f"{layer}.{kind}" if f"{layer}.{kind}" in after else f"{layer}.base_layer.{kind}"

    # The base is frozen: every one of its weights, the six wrapped projections of each layer included
    assert sum(".base_layer." in peft_name(n) for n in before) == 6 * model.config.num_hidden_layers
    assert all(torch.equal(before[n], after[peft_name(n)].detach()) for n in before)
    shown = {0: 0, 1: 2}
    for p in (0, 1):
        scores = np.array(option_log_probs(trainer.model, tokenizer, [chat(("Democrat, liberal", "Republican, "
                                                                          "conservative")[p], "Spending on health?")[1]],
                                           [SPENDING])[0])
        probability = np.exp(scores - scores.max()) / np.exp(scores - scores.max()).sum()
        assert probability[shown[p]] > 0.5  # learned each card's answer, not one answer for all


def test_train_model_with_the_option_objective_writes_an_adapter(smoke_data, tiny_model_dir):
    from polypersona_utils.modeling.training import adapter_settings, train_model

    config = tiny_config(tiny_model_dir, **{"training.objective": "option_likelihood"})
    result = train_model(config, config.models[0], progress=False)
    assert (result.run_dir / "adapter_model.safetensors").exists() and result.metrics["val_loss"]
    assert result.metrics["train_examples"] == sum(1 for r in smoke_data.splits["train"] if r["options"])
    assert adapter_settings(config)["training"]["objective"] == "option_likelihood"
    assert "objective" not in adapter_settings(tiny_config(tiny_model_dir))["training"]  # sft keeps old fingerprints
