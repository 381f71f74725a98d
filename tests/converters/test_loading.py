"""load_official: tensors, plain containers and argparse.Namespace are read; nothing else is unpickled."""
import os

import pytest
import torch
from safetensors.torch import save_file

from visionmix.converters import UnsafeCheckpointError, load_official


class _Payload:
    """What a crafted checkpoint could carry: unpickling it would run a shell command."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_pickle_with_any_other_class_is_refused_without_running_it(tmp_path):
    marker, path = tmp_path / "ran", tmp_path / "evil.pt"
    torch.save({"ema": {"w": torch.zeros(2)}, "args": _Payload(marker)}, path)
    with pytest.raises(UnsafeCheckpointError, match=r"refused to unpickle the class/function \w+\.system"):
        load_official(path)
    assert not marker.exists()


def test_missing_file_says_where_it_looked(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"checkpoint not found: {tmp_path / 'nope.pt'}"):
        load_official(tmp_path / "nope.pt")


@pytest.mark.parametrize("name, content, match", [
    ("noise.pt", b"not a pickle at all", r"not a checkpoint \(neither a zip-format torch file nor a pickle\)"),
    ("short.pt", None, "not a readable checkpoint"),
    ("short.safetensors", b"\x08\x00\x00\x00\x00\x00\x00\x00{}", "not a readable checkpoint"),
])
def test_unreadable_files_are_named(tmp_path, name, content, match):
    path = tmp_path / name
    if content is None:  # a zip checkpoint cut short
        torch.save({"w": torch.zeros(64)}, path)
        content = path.read_bytes()[:200]
    path.write_bytes(content)
    with pytest.raises((UnsafeCheckpointError, RuntimeError), match=match):
        load_official(path)


def test_safetensors_files_are_read(tmp_path):
    path = tmp_path / "w.safetensors"
    save_file({"pos_embed": torch.arange(6.0).reshape(1, 2, 3)}, str(path))
    assert torch.equal(load_official(path)["pos_embed"], torch.arange(6.0).reshape(1, 2, 3))
