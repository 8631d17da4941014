"""The one reader for files a user brings (persona panels, imported records): rows with the line they start on.

Text is UTF-8, with or without the byte-order mark Excel writes; JSON files hold one record per line (JSONL) or one
list of records, told apart by their content, not their suffix. Every error is a `UserFileError` naming the file,
the line and, where there is one, the field; nothing is guessed and no row is dropped.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Iterable

from . import paths


class UserFileError(ValueError):
    """A user file that cannot be read as it is; the message names the file, the line and the field."""


def resolve_user_path(value: str | Path, what: str) -> Path:
    """A path from the params: relative paths are taken from the project root (not from wherever a notebook runs);
    a missing file names where it was looked for."""
    path = Path(value).expanduser()
    resolved = path if path.is_absolute() else paths.PROJECT_ROOT / path
    if not resolved.exists():
        raise UserFileError(f"{what}: {value}: file not found (looked for {resolved})")
    if not resolved.is_file():
        raise UserFileError(f"{what}: {resolved}: not a file")
    return resolved


def read_text(path: Path) -> str:
    """The file as text (UTF-8, an optional BOM removed); undecodable bytes name their line."""
    data = Path(path).read_bytes()
    if b"\x00" in data[:4096]:
        raise UserFileError(f"{path}: binary file (NUL bytes); expected UTF-8 text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise UserFileError(f"{path}: line {line}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset "
                            f"{exc.start}); save the file as UTF-8") from None


def read_csv_rows(path: Path, required: Iterable[str] = ()) -> list[tuple[int, dict]]:
    """(line number, row) for each data row of a CSV file with a header line."""
    text = read_text(path)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise UserFileError(f"{path}: empty file (expected a header line)") from None
    header = [name.strip() for name in header]
    duplicated = sorted({name for name in header if header.count(name) > 1})
    if duplicated:
        raise UserFileError(f"{path}: line 1: column(s) {duplicated} appear more than once in the header")
    missing = [name for name in required if name not in header]
    if missing:
        raise UserFileError(f"{path}: line 1: missing column(s) {missing} (header has {header})")
    rows = []
    for cells in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) != len(header):
            raise UserFileError(f"{path}: line {line}: {len(cells)} cells but the header has {len(header)} "
                                f"columns {header}")
        rows.append((line, dict(zip(header, cells))))
    return rows


def read_json_rows(path: Path) -> list[tuple[int, object]]:
    """(line number, record) for a JSONL file or a JSON list, whichever the content is."""
    text = read_text(path)
    stripped = text.lstrip()
    if stripped.startswith("["):
        return _json_list(path, text)
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                rows.append((number, json.loads(line)))
            except json.JSONDecodeError as exc:
                raise UserFileError(f"{path}: line {number}: not valid JSON ({exc.msg}, column {exc.colno})") \
                    from None
    return rows


def _json_list(path: Path, text: str) -> list[tuple[int, object]]:
    decoder = json.JSONDecoder()
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserFileError(f"{path}: line {exc.lineno}: not valid JSON ({exc.msg}, column {exc.colno})") from None
    # Walk the list element by element to learn the line each record starts on.
    position, rows = text.index("[") + 1, []
    while True:
        while text[position] in " \t\r\n,":
            position += 1
        if text[position] == "]":
            return rows
        value, end = decoder.raw_decode(text, position)
        rows.append((text.count("\n", 0, position) + 1, value))
        position = end


def read_rows(path: Path, required: Iterable[str] = ()) -> list[tuple[int, object]]:
    """Rows of a .csv, .json or .jsonl user file."""
    path = Path(path)
    if path.suffix == ".csv":
        return read_csv_rows(path, required)
    if path.suffix in (".json", ".jsonl"):
        return read_json_rows(path)
    raise UserFileError(f"{path}: expected a .csv, .json or .jsonl file")
