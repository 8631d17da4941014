"""The resumable results log and the atomic writer: clear errors naming the file, and no duplicated work."""
import errno
import multiprocessing
import os
import time

import pytest

from polypersona_utils import provenance
from polypersona_utils.llm import resumable
from polypersona_utils.llm.resumable import ResumableLogError, run_batches
from polypersona_utils.provenance import atomic_write_text, read_jsonl


def square(batch, index):
    return [{"value": item * item} for item in batch]


def run(log, items=range(6), compute=square):
    return run_batches(list(items), key_of=str, order_of=lambda i: (i,), compute=compute, log_path=log,
                       batch_size=2, desc="test", progress=False)


def test_a_corrupt_line_inside_the_log_names_file_and_line_and_keeps_the_log(tmp_path):
    log = tmp_path / "log.jsonl"
    run(log)
    lines = log.read_text().splitlines(keepends=True)
    lines[2] = "{not json\n"
    log.write_text("".join(lines))
    before = log.read_bytes()
    with pytest.raises(ResumableLogError, match=rf"{log}: line 3: not a result row"):
        run(log)
    assert log.read_bytes() == before


def slow_square(batch, index):
    time.sleep(0.3)
    return square(batch, index)


def _build(log, counter):
    def counted(batch, index):
        with open(counter, "a") as handle:
            handle.write(f"{index}\n")
        return slow_square(batch, index)
    run(log, compute=counted)


def test_two_concurrent_builds_compute_each_batch_once(tmp_path):
    log, counter = tmp_path / "log.jsonl", tmp_path / "computed.txt"
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_build, args=(log, counter)) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert all(worker.exitcode == 0 for worker in workers)
    assert sorted(counter.read_text().split()) == ["0", "1", "2"]  # three batches, each once
    assert len(read_jsonl(log)) == 6  # six keys, each logged once


def test_a_full_disk_names_the_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    target = tmp_path / "table.csv"
    target.write_text("old\n")

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(provenance.os, "fsync", full)
    with pytest.raises(OSError, match=rf"{target}: could not write \(No space left on device\)"):
        atomic_write_text(target, "new\n")
    assert target.read_text() == "old\n" and sorted(p.name for p in tmp_path.iterdir()) == ["table.csv"]


def test_a_full_disk_while_appending_names_the_log(tmp_path, monkeypatch):
    log = tmp_path / "log.jsonl"

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(resumable.os, "fsync", full)
    with pytest.raises(OSError, match=rf"{log}: could not append results \(No space left on device\)"):
        run(log)


def test_a_file_where_a_folder_is_expected_is_named(tmp_path):
    (tmp_path / "results").write_text("I am a file")
    with pytest.raises(NotADirectoryError, match=rf"{tmp_path}/results: is a file, but .* needs it to be a folder"):
        atomic_write_text(tmp_path / "results" / "tables" / "x.csv", "x")


def test_an_unknown_code_version_is_said_not_silent(tmp_path, monkeypatch):
    from polypersona_utils import paths

    monkeypatch.setattr(paths, "PROJECT_ROOT", tmp_path)  # not a git clone (an unpacked archive)
    with pytest.warns(UserWarning, match="the code version is not recorded"):
        assert provenance.git_commit() == "unknown"
