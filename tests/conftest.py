import hashlib
from pathlib import Path

import pytest

from polypersona_utils import paths

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def tmp_roots(tmp_path, monkeypatch):
    """Send artifacts/ and results/ to a temporary folder so tests never touch a user's outputs."""
    monkeypatch.setattr(paths, "ARTIFACTS_ROOT", tmp_path / "artifacts")
    monkeypatch.setattr(paths, "RESULTS_ROOT", tmp_path / "results")
    return tmp_path


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
