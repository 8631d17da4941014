import json

import pytest

from polypersona_utils.llm import models
from polypersona_utils.llm.models import ModelUnavailableError


def test_embedded_model_is_a_plain_trainable_folder():
    folder = models.resolve_model_path("smollm2-135m-instruct")
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "llama" and "quantization_config" not in config
    assert (folder / "model.safetensors").exists() and (folder / "tokenizer.json").exists()


@pytest.mark.slow
def test_embedded_model_loads_and_answers():
    tokenizer = models.load_tokenizer("smollm2-135m-instruct")
    model = models.load_causal_lm("smollm2-135m-instruct")
    assert type(model).__name__ == "LlamaForCausalLM" and model.num_parameters() == 134_515_008
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    encoded = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                            return_dict=True)
    output = model.generate(**encoded, max_new_tokens=12, do_sample=False)
    assert "Paris" in tokenizer.decode(output[0, encoded["input_ids"].shape[1]:])
    assert tokenizer.padding_side == "left" and tokenizer.pad_token is not None


def test_local_folder_is_used_as_is(tmp_path):
    folder = models.resolve_model_path("smollm2-135m-instruct")
    assert models.resolve_model_path(str(folder)) == folder
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelUnavailableError, match="needs a config.json"):
        models.resolve_model_path(str(tmp_path / "empty"))


def test_hub_id_needs_a_pinned_revision():
    with pytest.raises(ModelUnavailableError, match="needs a pinned `revision`"):
        models.resolve_model_path("TinyLlama/TinyLlama-1.1B-Chat-v1.0")


def test_hub_id_offline_names_the_missing_model(monkeypatch, tmp_path):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(ModelUnavailableError, match=r"'microsoft/phi-2' at revision ef38.*could not be "
                                                 r"loaded from the Hugging Face hub: \w+(Error|Enabled|Exception)"):
        models.resolve_model_path("microsoft/phi-2", "ef382358ec9e382308935a992d908de099b64c23")


def test_missing_chat_template_is_an_error_and_chatml_is_supplied(tmp_path):
    from transformers import AutoTokenizer

    folder = models.resolve_model_path("smollm2-135m-instruct")
    plain = tmp_path / "no-template"
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.chat_template = None
    tokenizer.save_pretrained(plain)
    (plain / "chat_template.jinja").unlink(missing_ok=True)
    (plain / "config.json").write_text((folder / "config.json").read_text())
    with pytest.raises(ModelUnavailableError, match="no chat template; set `chat_template: chatml`"):
        models.load_tokenizer(str(plain))
    chatml = models.load_tokenizer(str(plain), chat_template="chatml")
    text = chatml.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False,
                                      add_generation_prompt=True)
    assert text == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"


def test_nf4_quantization_config_is_the_papers():
    config = models.quantization_config("nf4", "bfloat16")
    assert config.load_in_4bit and config.bnb_4bit_quant_type == "nf4" and config.bnb_4bit_use_double_quant
    assert str(config.bnb_4bit_compute_dtype) == "torch.bfloat16"
    assert models.quantization_config("none", "float32") is None
