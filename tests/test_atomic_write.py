"""visionmix.atomic_write: the file appears whole when the block ends, and nothing appears when it fails."""
import pytest

from visionmix.atomic_write import atomic_path, write_bytes, write_text


def test_the_file_takes_its_name_only_when_the_block_ends(tmp_path):
    out = tmp_path / "deep/er/result.npz"
    with atomic_path(out) as temp:
        assert temp.parent == out.parent and temp.suffix == ".npz" and temp.name.startswith(".result.")
        temp.write_bytes(b"new")
        assert not out.exists()
    assert out.read_bytes() == b"new" and [p.name for p in out.parent.iterdir()] == ["result.npz"]


def test_a_failure_leaves_the_old_file_and_no_temporary_one(tmp_path):
    out = tmp_path / "result.json"
    write_text(out, "old")
    with pytest.raises(OSError, match="disk full"):
        with atomic_path(out, fsync=True) as temp:
            temp.write_text("half of the new")
            raise OSError("disk full")
    assert out.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["result.json"]
    write_bytes(out, b"\x00new")
    assert out.read_bytes() == b"\x00new"
