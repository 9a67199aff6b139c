"""Files replaced in one step: the new content on success, the old file untouched on an error."""

from __future__ import annotations

import pytest

from av_stack.files import replaced_atomically, write_bytes_atomically, write_text_atomically


def test_a_finished_write_replaces_the_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "deep" / "policy.zip"
    write_bytes_atomically(target, b"one")
    write_bytes_atomically(target, b"two")
    write_text_atomically(tmp_path / "m.json", "{}")
    assert target.read_bytes() == b"two" and (tmp_path / "m.json").read_text() == "{}"
    assert sorted(p.name for p in target.parent.iterdir()) == ["policy.zip"]


def test_the_temporary_keeps_the_extension_for_writers_that_add_one(tmp_path):
    with replaced_atomically(tmp_path / "last.zip") as tmp:
        assert tmp.suffix == ".zip" and tmp.parent == tmp_path and tmp.name != "last.zip"
        tmp.write_bytes(b"x")


def test_an_error_mid_write_keeps_the_old_file_and_removes_the_partial_one(tmp_path):
    target = tmp_path / "shard.npz"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="disk full"):
        with replaced_atomically(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("disk full")
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["shard.npz"]
