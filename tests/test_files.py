"""files.atomic_open: the new bytes or the old ones, never a cut file, and both the data
and the rename pushed to the disk (the file's fsync before the rename, then the
directory's)."""

import os

import pytest

from lenet_jax import files


def test_a_write_replaces_the_file_whole_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "sub" / "eval.json"
    files.write_text(str(path), "first")
    files.write_text(str(path), "second")
    assert path.read_text() == "second"
    assert sorted(os.listdir(path.parent)) == ["eval.json"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "config.json"
    path.write_text("old")
    with pytest.raises(RuntimeError, match="disk"):
        with files.atomic_open(str(path)) as f:
            f.write("half of the new")
            raise RuntimeError("the disk went away")
    assert path.read_text() == "old"
    assert sorted(os.listdir(tmp_path)) == ["config.json"]


def test_the_data_is_fsynced_before_the_rename_and_the_directory_after(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))))
        real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", os.path.basename(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    path = tmp_path / "metrics.jsonl"
    files.write_text(str(path), "row\n")
    tmp_name = f"metrics.jsonl.{os.getpid()}.tmp"
    assert events == [("fsync", tmp_name), ("replace", "metrics.jsonl"), ("fsync", tmp_path.name)]
