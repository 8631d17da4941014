"""Training: prompt masking, frozen base and moving LoRA weights (16-bit and real 4-bit on CPU), adapter reload,
resume after a kill, the CUDA plan, and notebook 02 through Make."""
import dataclasses
import json
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from polypersona_utils import paths
from polypersona_utils.config import load_config
from polypersona_utils.modeling.training import (plan_training, prompt_completion, resolve_target_modules, sft_config,
                                                 sft_kwargs, train_model)

from conftest import tiny_config


def lora_and_base(model):
    lora = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" in n}
    base = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" not in n}
    return lora, base


def make_trainer(config, records, model=None):
    """The project's trainer (`AnswerLossSFTTrainer`, as notebook 02 builds it) on `records`."""
    from datasets import Dataset
    from peft import LoraConfig

    from polypersona_utils.llm import models
    from polypersona_utils.modeling.answer_loss import AnswerLossSFTTrainer
    from polypersona_utils.modeling.training import plan_training

    spec = config.models[0]
    plan = plan_training(config.training, cuda_available=False)
    tokenizer = models.load_tokenizer(spec.model_id)
    model = model or models.load_causal_lm(spec.model_id, None, plan.quantization, plan.compute_dtype, "cpu")
    peft = LoraConfig(r=config.lora.r, lora_alpha=config.lora.alpha, lora_dropout=0.0,
                      target_modules=resolve_target_modules(model, config.lora.target_modules), task_type="CAUSAL_LM")
    args = sft_config(config, plan, paths.RunPaths(config.profile).adapters / "scratch", progress=False, evaluate=False)
    dataset = Dataset.from_list([prompt_completion(r) for r in records])
    return AnswerLossSFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                                peft_config=peft)


def test_the_answer_position_loss_is_trls_loss(smoke_data, tiny_model_dir):
    """The project's loss (output head at answer positions only) equals TRL's own on the same batch: value, value
    over a given token count (gradient accumulation), and every LoRA gradient. Wide random weights, so a position
    off by one or a prompt token let in would change the numbers."""
    from transformers import AutoConfig, AutoModelForCausalLM
    from trl import SFTTrainer

    wide = AutoConfig.from_pretrained(tiny_model_dir)
    wide.initializer_range = 0.5
    torch.manual_seed(0)
    trainer = make_trainer(tiny_config(tiny_model_dir), smoke_data.splits["train"][:6],
                           model=AutoModelForCausalLM.from_config(wide))
    batch = next(iter(trainer.get_train_dataloader()))
    assert (batch["labels"] != -100).sum() < 0.5 * batch["labels"].numel()  # most positions are prompt

    def loss_and_gradients(compute, count=None):
        trainer.model.zero_grad()
        loss = compute(trainer.model, dict(batch), num_items_in_batch=count)
        loss.backward()
        return loss.item(), {n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None}

    trl = lambda model, inputs, num_items_in_batch: SFTTrainer.compute_loss(trainer, model, inputs,  # noqa: E731
                                                                           num_items_in_batch=num_items_in_batch)
    ours, our_grads = loss_and_gradients(trainer.compute_loss)
    theirs, their_grads = loss_and_gradients(trl)
    assert ours == pytest.approx(theirs, rel=1e-5) and ours > 1
    assert our_grads.keys() == their_grads.keys() and any("lora_B" in n for n in our_grads)
    for name in our_grads:
        torch.testing.assert_close(our_grads[name], their_grads[name], rtol=1e-4, atol=1e-6)
    assert loss_and_gradients(trainer.compute_loss, 7)[0] == pytest.approx(loss_and_gradients(trl, 7)[0], rel=1e-5)


def test_prompt_tokens_carry_label_minus_100(smoke_data, tiny_model_dir):
    config = tiny_config(tiny_model_dir)
    records = smoke_data.splits["train"][:4]
    trainer = make_trainer(config, records)
    batch = next(iter(trainer.get_train_dataloader()))
    tokenizer = trainer.processing_class
    for row in range(batch["input_ids"].shape[0]):
        labels, ids = batch["labels"][row], batch["input_ids"][row]
        kept = labels != -100
        assert kept.any() and (labels[kept] == ids[kept]).all()
        first = int(kept.nonzero()[0])
        assert (labels[:first] == -100).all()  # every prompt token is masked
        answer = tokenizer.decode(ids[kept], skip_special_tokens=True).strip()
        prompt = tokenizer.decode(ids[:first])
        assert prompt.rstrip().endswith("<|im_start|>assistant")
        assert answer in {r["reference"] for r in records}


def test_training_step_moves_lora_weights_only(smoke_data, tiny_model_dir):
    config = tiny_config(tiny_model_dir, **{"training.save_steps": 1000, "training.warmup_ratio": 0.0})
    trainer = make_trainer(config, smoke_data.splits["train"][:12])
    lora_before, base_before = lora_and_base(trainer.model)
    trainer.args.max_steps = 2  # step 1 moves lora_B off its zero init; only then does lora_A get a gradient
    trainer.train()
    lora_after, base_after = lora_and_base(trainer.model)
    assert all(torch.equal(base_before[n], base_after[n]) for n in base_before)
    moved = [n for n in lora_before if not torch.equal(lora_before[n], lora_after[n])]
    assert any("lora_B" in n for n in moved) and any("lora_A" in n for n in moved)
    # Saved and reloaded onto a fresh base, the adapter gives the trained model's greedy tokens.
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    saved = paths.RunPaths("smoke").adapters / "reload-check"
    trainer.model.save_pretrained(saved)
    reloaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), saved).eval()
    trained = trainer.model.eval()
    tokenizer = trainer.processing_class
    encoded = tokenizer.apply_chat_template(prompt_completion(smoke_data.splits["test"][0])["prompt"],
                                            add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        expected = trained.generate(**encoded, max_new_tokens=10, do_sample=False)
        got = reloaded.generate(**encoded, max_new_tokens=10, do_sample=False)
    assert torch.equal(expected, got)


@pytest.mark.slow
def test_real_4bit_training_step_on_cpu(smoke_data):
    import bitsandbytes as bnb

    config = load_config("smoke", overrides={"training.max_seq_length": 256, "training.warmup_ratio": 0.0})
    assert config.training.quantization == "nf4"
    trainer = make_trainer(config, smoke_data.splits["train"][:4])
    quantised = [m for m in trainer.model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert len(quantised) == 30 * 7  # every targeted projection of SmolLM2's 30 layers is 4-bit
    assert quantised[0].weight.quant_state.quant_type == "nf4"
    packed_before = {id(m): m.weight.data.clone() for m in quantised}
    lora_before, _ = lora_and_base(trainer.model)
    trainer.args.max_steps = 1
    trainer.train()
    assert all(torch.equal(packed_before[id(m)], m.weight.data) for m in quantised)
    lora_after, _ = lora_and_base(trainer.model)
    assert any(not torch.equal(lora_before[n], lora_after[n]) for n in lora_before if "lora_B" in n)


def test_train_model_saves_a_reloadable_adapter_and_skips_a_finished_run(smoke_data, tiny_model_dir):
    from safetensors.torch import load_file

    config = tiny_config(tiny_model_dir)
    first = train_model(config, config.models[0], progress=False)
    assert first.trained_now and (first.run_dir / "adapter_model.safetensors").exists()
    card = (first.run_dir / "README.md").read_text()
    assert "Trainable parameters" in card and "NOT the paper's numbers" in card
    assert first.metrics["val_loss"] and 0 < first.metrics["trainable_share"] < 1
    assert (paths.figures_dir("smoke") / "loss_tiny.png").exists()
    again = train_model(config, config.models[0], progress=False)
    assert not again.trained_now and again.metrics == first.metrics
    lora_weights = load_file(first.run_dir / "adapter_model.safetensors")
    assert any(w.abs().sum() > 0 for n, w in lora_weights.items() if "lora_B" in n)  # trained, not the zero init


def test_missing_target_module_is_a_clear_error(tiny_model_dir):
    from transformers import AutoModelForCausalLM, PhiConfig, PhiForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    with pytest.raises(ValueError, match="'qkv_proj' does not exist in this llama model"):
        resolve_target_modules(model, ["q_proj", "qkv_proj"])
    phi = PhiForCausalLM(PhiConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                   num_attention_heads=4))
    names = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    assert resolve_target_modules(phi, names) == ["q_proj", "k_proj", "v_proj", "dense", "fc1", "fc2"]


def test_cuda_plan_without_a_gpu():
    paper = load_config("paper").training
    big = plan_training(paper, cuda_available=True, gpu_memory_gib=80)
    assert (big.device, big.bf16_autocast, big.gradient_checkpointing, big.compute_dtype) == (
        "cuda", True, True, "bfloat16")
    assert (big.per_device_batch_size, big.gradient_accumulation_steps) == (4, 4)
    small = plan_training(paper, cuda_available=True, gpu_memory_gib=8)
    assert (small.per_device_batch_size, small.gradient_accumulation_steps) == (1, 16)  # same effective batch
    cpu = plan_training(paper, cuda_available=False)
    assert (cpu.device, cpu.quantization, cpu.gradient_checkpointing, cpu.bf16_autocast) == ("cpu", "nf4", False, False)
    # bf16 autocast on a CPU only where it computes bf16 natively, and only for a bf16 compute dtype
    assert plan_training(paper, cuda_available=False, cpu_bf16=True).bf16_autocast
    # a CPU without native bf16 computes in float32 (emulated bf16 ran 8x slower), one with it as configured
    assert (cpu.compute_dtype, plan_training(paper, cuda_available=False, cpu_bf16=True).compute_dtype) == (
        "float32", "bfloat16")
    assert "no native bf16" in cpu.reason
    fp32 = dataclasses.replace(paper, compute_dtype="float32")
    assert not plan_training(fp32, cuda_available=False, cpu_bf16=True).bf16_autocast
    args = sft_kwargs(load_config("paper"), big, paths.ARTIFACTS_ROOT / "unused", progress=False)
    assert args["bf16"] and args["activation_checkpointing"] and not args["use_cpu"] and args["completion_only_loss"]
    assert args["per_device_train_batch_size"] * args["gradient_accumulation_steps"] == 16
    assert (args["lr_scheduler_type"], args["max_grad_norm"], args["learning_rate"], args["num_train_epochs"]) == (
        "cosine", 0.3, 2e-4, 3.0)
    cpu_args = sft_config(load_config("paper"), cpu, paths.ARTIFACTS_ROOT / "unused", progress=False)
    assert not cpu_args.bf16 and not cpu_args.activation_checkpointing and cpu_args.use_cpu


def test_detect_plan_reads_the_gpu_it_finds(monkeypatch):
    """The CUDA branch of detect_plan, without a GPU: the card's memory (bytes) reaches the plan in GiB."""
    import types

    import torch

    from polypersona_utils.modeling.training import detect_plan

    paper = load_config("paper").training
    card = types.SimpleNamespace(total_memory=8 * 2**30)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: card)
    plan = detect_plan(paper)
    assert (plan.device, plan.per_device_batch_size, plan.gradient_accumulation_steps) == ("cuda", 1, 16)
    assert "CUDA (8 GiB)" in plan.reason
    card.total_memory = 80 * 2**30
    assert (detect_plan(paper).per_device_batch_size, detect_plan(paper).gradient_accumulation_steps) == (4, 4)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert detect_plan(paper).device == "cpu"


RESUME_SCRIPT = textwrap.dedent("""
    import sys
    from pathlib import Path
    from polypersona_utils import paths
    from polypersona_utils.config import load_config
    from polypersona_utils.modeling.training import train_model
    root, model_dir, run = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    paths.ARTIFACTS_ROOT, paths.RESULTS_ROOT = root / "artifacts", root / "results"
    config = load_config("smoke", overrides={
        "models": [{"name": "tiny", "model_id": model_dir}], "training.quantization": "none",
        "training.compute_dtype": "float32", "training.learning_rate": 1e-2, "training.save_steps": 1,
        "training.epochs": 1, "training.per_device_batch_size": 4, "lora.dropout": 0.1})
    train_model(config, config.models[0], run_name=run, progress=False)
""")


@pytest.mark.slow
def test_killed_training_resumes_to_the_same_adapter(smoke_data, tiny_model_dir, tmp_roots):
    from safetensors.torch import load_file

    script = tmp_roots / "train_run.py"
    script.write_text(RESUME_SCRIPT)
    command = [sys.executable, str(script), str(tmp_roots), str(tiny_model_dir)]
    run_dir = paths.RunPaths("smoke").adapters / "interrupted"
    process = subprocess.Popen(command + ["interrupted"])
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None and not (run_dir / "checkpoints" / "checkpoint-4").exists():
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (run_dir / "training_complete.json").exists(), "the kill must land mid-run"
    subprocess.run(command + ["interrupted"], check=True)
    subprocess.run(command + ["uninterrupted"], check=True)
    resumed = json.loads((run_dir / "metrics.json").read_text())
    assert resumed["resumed_from"] and resumed["resumed_from"].startswith("checkpoint-")
    whole = json.loads((paths.RunPaths("smoke").adapters / "uninterrupted" / "metrics.json").read_text())
    # Whole-run figures, not the mean of the steps after the resume.
    assert resumed["train_loss"] == pytest.approx(whole["train_loss"], rel=1e-4)
    assert resumed["train_loss_this_session"] != pytest.approx(whole["train_loss"], rel=1e-4)
    a = load_file(run_dir / "adapter_model.safetensors")
    b = load_file(paths.RunPaths("smoke").adapters / "uninterrupted" / "adapter_model.safetensors")
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=1e-6)


def test_whole_run_loss_weights_each_log_by_the_steps_it_covers():
    from polypersona_utils.modeling.training import whole_run_train_loss

    history = [{"loss": 3.0, "step": 2}, {"eval_loss": 9.0, "step": 2}, {"loss": 1.0, "step": 3},
               {"loss": 2.0, "step": 6}]
    assert whole_run_train_loss(history) == pytest.approx((3.0 * 2 + 1.0 * 1 + 2.0 * 3) / 6)
    assert whole_run_train_loss([{"eval_loss": 1.0, "step": 1}]) is None


def test_training_twice_on_one_machine_gives_the_same_adapter(smoke_data, tiny_model_dir):
    """Run-to-run determinism of training (same params, same machine); across machines see the README."""
    from safetensors.torch import load_file

    config = tiny_config(tiny_model_dir)
    first = train_model(config, config.models[0], run_name="first", progress=False)
    second = train_model(config, config.models[0], run_name="second", progress=False)
    a = load_file(first.run_dir / "adapter_model.safetensors")
    b = load_file(second.run_dir / "adapter_model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert first.metrics["train_loss"] == second.metrics["train_loss"]


def test_accelerate_config_and_per_process_device_map(monkeypatch):
    from accelerate.commands.config.config_args import ClusterConfig

    from polypersona_utils.modeling.training import device_map_for

    config = ClusterConfig.from_yaml_file(str(paths.PROJECT_ROOT / "configs" / "accelerate_multi_gpu.yaml"))
    assert config.distributed_type == "MULTI_GPU" and config.mixed_precision == "bf16"
    cuda = plan_training(load_config("paper").training, cuda_available=True, gpu_memory_gib=80)
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "2")
    assert device_map_for(cuda) == {"": 2}  # each process on its own GPU
    assert device_map_for(plan_training(load_config("paper").training, cuda_available=False)) == "cpu"
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert device_map_for(cuda) == "cuda"


def test_generation_parameter_change_does_not_retrain(smoke_data, tiny_model_dir):
    config = tiny_config(tiny_model_dir)
    assert train_model(config, config.models[0], progress=False).trained_now
    downstream = tiny_config(tiny_model_dir, **{"generation.temperature": 0.2, "training.save_steps": 3})
    assert not train_model(downstream, downstream.models[0], progress=False).trained_now
    upstream = tiny_config(tiny_model_dir, **{"lora.r": 4})
    assert train_model(upstream, upstream.models[0], progress=False).trained_now


def test_lora_on_the_top_layers_adapts_only_those_and_reloads_onto_them(tiny_model_dir, tmp_path):
    """`lora.top_layers: 1` on a 2-layer model: LoRA weights on layer 1 only (the frozen layer 0 then needs no
    backward pass); the saved adapter names the same layers, so loading it adapts layer 1 alone; more layers than
    the model has is refused by name."""
    import re

    from peft import PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM

    from polypersona_utils.config import ConfigError
    from polypersona_utils.modeling.training import lora_config

    from conftest import tiny_config

    config = tiny_config(tiny_model_dir, **{"lora.top_layers": 1})
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    model = get_peft_model(base, lora_config(config, base))
    layers = {int(re.search(r"layers\.(\d+)\.", n).group(1)) for n, p in model.named_parameters() if p.requires_grad}
    assert layers == {1}
    model.save_pretrained(tmp_path / "adapter")
    loaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), tmp_path / "adapter")
    assert {int(re.search(r"layers\.(\d+)\.", n).group(1)) for n, _ in loaded.named_parameters() if "lora_" in n} == {1}
    every = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                           lora_config(tiny_config(tiny_model_dir), AutoModelForCausalLM.from_pretrained(tiny_model_dir)))
    assert {int(re.search(r"layers\.(\d+)\.", n).group(1)) for n, p in every.named_parameters() if p.requires_grad} \
        == {0, 1}
    with pytest.raises(ConfigError, match="top_layers: at least 1"):
        tiny_config(tiny_model_dir, **{"lora.top_layers": 0})
    with pytest.raises(ValueError, match="lora.top_layers: 3, but LlamaForCausalLM has 2 decoder layers"):
        lora_config(tiny_config(tiny_model_dir, **{"lora.top_layers": 3}),
                    AutoModelForCausalLM.from_pretrained(tiny_model_dir))
