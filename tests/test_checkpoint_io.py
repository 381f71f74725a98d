"""visionmix.checkpoint_io: checkpoints read as data, the fit report, --trust-checkpoint for one named file."""
import pytest
import torch

from visionmix.checkpoint_io import (CheckpointError, CheckpointMismatchError, check_fits, is_trusted, read_checkpoint,
                                     shapes_of, trust_path)


def test_plain_weights_load_anywhere(tmp_path):
    torch.save({"w": torch.ones(2)}, tmp_path / "weights.pth")
    assert torch.equal(read_checkpoint(str(tmp_path / "weights.pth"))["w"], torch.ones(2))


class Note:
    """An arbitrary pickled object, like the message hub mmengine stores."""

    def __init__(self, text):
        self.text = text


def test_pickled_objects_load_only_when_the_command_line_trusts_the_file(tmp_path):
    torch.save({"hub": Note("hi")}, tmp_path / "full.pth")
    with pytest.raises(CheckpointError, match=r"full.pth holds the class/function tests.test_checkpoint_io.Note; "
                                              r"checkpoints are read as data.*pass --trust-checkpoint"):
        read_checkpoint(str(tmp_path / "full.pth"))
    trust_path(tmp_path / "full.pth")  # what --trust-checkpoint does, for that one file
    assert is_trusted(tmp_path / "full.pth") and not is_trusted(tmp_path / "other.pth")
    assert read_checkpoint(str(tmp_path / "full.pth"))["hub"].text == "hi"


def test_missing_and_truncated_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="gone.pth"):
        read_checkpoint(str(tmp_path / "gone.pth"))
    torch.save({"w": torch.randn(100)}, tmp_path / "ok.pth")
    (tmp_path / "cut.pth").write_bytes((tmp_path / "ok.pth").read_bytes()[:200])
    with pytest.raises(CheckpointError, match="cut.pth is truncated or corrupt"):
        read_checkpoint(str(tmp_path / "cut.pth"))


def fits_state(width: int = 4, head: int = 3) -> dict:
    return {"state_dict": {"body.weight": torch.zeros(width, width), "body.bias": torch.zeros(width),
                           "head.weight": torch.zeros(head, width)},
            "meta": {"config_file": "/configs/wide.py", "experiment_name": "wide_2024"}}


def test_a_checkpoint_that_fits_passes_quietly():
    shapes = shapes_of(fits_state()["state_dict"])
    assert check_fits(shapes, fits_state(), "x.pth", strict=True) is None


def test_resuming_another_configs_checkpoint_is_a_short_error():
    model = shapes_of(fits_state(width=8)["state_dict"])
    with pytest.raises(CheckpointMismatchError) as err:
        check_fits(model, fits_state(width=4), "x.pth", strict=True)
    lines = str(err.value).splitlines()
    assert lines[0] == "checkpoint x.pth does not fit this config's model: 3 of 3 tensors differ in shape, 0 missing, 0 unexpected, e.g."
    assert lines[1] == "  body.weight: checkpoint (4, 4) vs model (8, 8)" and len(lines) == 5
    assert "trained with /configs/wide.py" in lines[-1]


def test_load_from_may_skip_a_head_but_not_most_of_the_model():
    model = shapes_of(fits_state(head=10)["state_dict"])
    assert "1 of 3 tensors differ" in check_fits(model, fits_state(head=3), "x.pth", strict=False)
    with pytest.raises(CheckpointMismatchError):
        check_fits(shapes_of(fits_state(width=8)["state_dict"]), fits_state(), "x.pth", strict=False)
