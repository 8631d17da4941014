import copy
import dataclasses
import hashlib
import json
import shlex
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from polypersona_utils import paths

FIXTURES = Path(__file__).parent / "fixtures"


# The two files that take minutes each (notebooks run by make on the smoke profile): collected first, so that under
# `make test` (`--dist loadfile --no-loadscope-reorder`: whole files, in collection order) each worker starts with
# one of them and the short files fill in around them; the suite's wall time is its busiest worker's.
LONG_FILES = ("test_notebooks.py", "test_notebook_runs.py")


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONG_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(LONG_FILES)))  # stable: each file keeps its order


def stand_in_venv(folder: Path) -> Path:
    """A 'venv' whose python runs this interpreter and skips pip, marked installed for make."""
    (folder / "bin").mkdir(parents=True, exist_ok=True)
    python = folder / "bin" / "python"
    python.write_text(f'#!/bin/sh\n[ "$1 $2" = "-m pip" ] && exit 0\nexec {shlex.quote(sys.executable)} "$@"\n')
    python.chmod(0o755)
    (folder / ".installed").touch()
    return folder


@pytest.fixture(scope="session", autouse=True)
def make_runs_this_interpreter(tmp_path_factory):
    """Every make a test calls uses a stand-in venv running the tests' own interpreter, already installed: no test
    creates or upgrades the checkout's .venv (Makefile: POLYPERSONA_VENV)."""
    venv = stand_in_venv(tmp_path_factory.mktemp("venv"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("POLYPERSONA_VENV", str(venv))
        yield venv


def use_workspace(patch: pytest.MonkeyPatch, folder: Path) -> Path:
    """Make `folder` the workspace (artifacts/ and results/) for as long as `patch` holds."""
    patch.setattr(paths, "WORKSPACE", folder)
    patch.setattr(paths, "ARTIFACTS_ROOT", folder / "artifacts")
    patch.setattr(paths, "RESULTS_ROOT", folder / "results")
    return folder


def copy_workspace(source: Path, target: Path) -> None:
    """A workspace's artifacts/ and results/ copied into another (file dates kept, so make sees the same order)."""
    for folder in ("artifacts", "results"):
        shutil.copytree(source / folder, target / folder, dirs_exist_ok=True)


@pytest.fixture
def tmp_roots(tmp_path, monkeypatch):
    """Make a temporary folder the workspace (artifacts/ and results/) so tests never touch a user's outputs."""
    return use_workspace(monkeypatch, tmp_path)


class HashTeacher:
    """A deterministic stand-in teacher for tests of the builder itself (not of the teacher)."""

    def identity(self):
        return {"backend": "hash-test-teacher"}

    def answer(self, requests, batch_index):
        out = []
        for r in requests:
            h = int(hashlib.sha256(repr(r.messages).encode()).hexdigest(), 16)
            out.append(r.options[h % len(r.options)] if r.options else f"My answer number {h % 997}.")
        return out


@pytest.fixture
def hash_teacher():
    return HashTeacher()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A randomly initialised 2-layer Llama with SmolLM2's tokenizer: trains in well under a second a step."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from polypersona_utils.llm import models

    source = models.resolve_model_path("smollm2-135m-instruct")
    folder = tmp_path_factory.mktemp("tiny-llama")
    tokenizer = AutoTokenizer.from_pretrained(source)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def smoke_build(tmp_path_factory):
    """The smoke dataset built once per session with the deterministic stand-in teacher, in a workspace of its
    own (`test_dataset.py` checks that building it twice gives the same bytes)."""
    from polypersona_utils.config import load_config
    from polypersona_utils.dataset.build import build_dataset

    with pytest.MonkeyPatch.context() as patch:
        workspace = use_workspace(patch, tmp_path_factory.mktemp("smoke-build"))
        return workspace, build_dataset(load_config("smoke"), progress=False, teacher=HashTeacher())


@pytest.fixture
def smoke_data(tmp_roots, smoke_build):
    """The smoke dataset (artifacts and results as `build_dataset` leaves them) copied into this test's workspace;
    its records are the test's own copy."""
    workspace, built = smoke_build
    copy_workspace(workspace, tmp_roots)
    data_dir = paths.data_dir("smoke")
    return dataclasses.replace(built, splits=copy.deepcopy(built.splits), counts=copy.deepcopy(built.counts),
                               data_dir=data_dir, files={name: data_dir / path.name for name, path in built.files.items()})


def tiny_config(model_dir, **overrides):
    from polypersona_utils.config import load_config

    return load_config("smoke", overrides={
        "models": [{"name": "tiny", "model_id": str(model_dir)}], "training.quantization": "none",
        "training.compute_dtype": "float32", "training.learning_rate": 1e-2, **overrides})


class FakeOpenAI(BaseHTTPRequestHandler):
    """A minimal OpenAI-compatible /chat/completions endpoint on loopback; records what it was asked. HTTP/1.1 with
    keep-alive, as real servers answer (the `openai` client reuses its connections)."""

    protocol_version = "HTTP/1.1"

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.seen.append(body)
        text = self.answer(body)
        payload = json.dumps({"choices": [{"message": {"role": "assistant", "content": text}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def answer(self, body: dict) -> str:
        return "Yes, I do. Every month." if "options" in body["messages"][-1]["content"] else "I walk a lot. Then I rea"

    def log_message(self, *args):
        pass


def serve(handler):
    """(base url, list of request bodies, server) of `handler` on loopback, in a thread."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)  # the client keeps several requests in flight
    server.daemon_threads = True
    server.seen = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_port}/v1", server.seen, server


@pytest.fixture
def openai_server():
    """(base url, list of request bodies) of a local OpenAI-compatible server."""
    url, seen, server = serve(FakeOpenAI)
    yield url, seen
    server.shutdown()


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, tiny_model_dir):
    """For the notebooks' tests (tests/test_notebooks.py, tests/test_notebook_runs.py), one per test file: a
    workspace holding copies of the shipped profiles; `paths` and every make call point at it. Its smoke
    profile trains, answers and scores with the tiny random Llama (SmolLM2's tokenizer and chat template, two layers
    of width 32) under SmolLM2's name; the teacher that writes the dataset's answers stays SmolLM2 (a random model's
    answers would be dropped as unparseable). These tests check the study's plumbing; the real model's numbers are
    checked where they matter (4-bit training and scoring in test_training.py and test_panel.py, a real server in
    test_served_server.py, Gemma in test_gemma.py)."""
    root = tmp_path_factory.mktemp("workspace")
    shutil.copytree(paths.PARAMS_DIR, root / "params")
    smoke = root / "params" / "smoke.yaml"
    profile = yaml.safe_load(smoke.read_text())
    profile["models"] = [{"name": "smollm2-135m", "model_id": str(tiny_model_dir)}]
    smoke.write_text(yaml.safe_dump(profile, sort_keys=False))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("POLYPERSONA_WORKSPACE", str(root))
        patch.setattr(paths, "PARAMS_DIR", root / "params")
        yield use_workspace(patch, root)


def make(*args, check=True, capture=False):
    return subprocess.run(["make", *args], cwd=paths.PROJECT_ROOT, check=check, text=True,
                          capture_output=capture)


def up_to_date(*args) -> bool:
    return make("-q", *args, check=False).returncode == 0


def executed_without_error(name: str) -> dict:
    notebook = json.loads((paths.RunPaths("smoke").executed / name).read_text())
    assert notebook["metadata"]["papermill"]["parameters"] == {"profile": "smoke"}
    assert not any(o.get("output_type") == "error" for c in notebook["cells"] for o in c.get("outputs", []))
    return notebook
