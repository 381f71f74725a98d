import pytest
import torch

from visionmix.engine import CheckpointError, is_trusted, trust_path
from visionmix.engine.checkpoint import load_local_checkpoint


def test_plain_weights_load_anywhere(tmp_path):
    torch.save({"w": torch.ones(2)}, tmp_path / "weights.pth")
    assert torch.equal(load_local_checkpoint(str(tmp_path / "weights.pth"))["w"], torch.ones(2))


class Note:
    """An arbitrary pickled object, like the message hub mmengine stores."""

    def __init__(self, text):
        self.text = text


def test_pickled_objects_need_a_trusted_location(tmp_path):
    untrusted = tmp_path / "elsewhere"
    untrusted.mkdir()
    torch.save({"hub": Note("hi")}, untrusted / "full.pth")
    with pytest.raises(CheckpointError, match="trusted"):
        load_local_checkpoint(str(untrusted / "full.pth"))
    trust_path(untrusted)
    assert is_trusted(untrusted / "full.pth") and not is_trusted(tmp_path / "other.pth")
    assert load_local_checkpoint(str(untrusted / "full.pth"))["hub"].text == "hi"


def test_missing_and_truncated_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="gone.pth"):
        load_local_checkpoint(str(tmp_path / "gone.pth"))
    torch.save({"w": torch.randn(100)}, tmp_path / "ok.pth")
    (tmp_path / "cut.pth").write_bytes((tmp_path / "ok.pth").read_bytes()[:200])
    with pytest.raises(CheckpointError, match="cut.pth is truncated or corrupt"):
        load_local_checkpoint(str(tmp_path / "cut.pth"))
