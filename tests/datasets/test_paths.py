from pathlib import Path

import pytest

from visionmix.datasets import ImageFolderDataset
from visionmix.datasets.paths import DATA_ENV, missing_data_error, resolve_root


def test_relative_root_resolves_under_visionmix_data(monkeypatch, tmp_path):
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    assert resolve_root("imagenet/train") == tmp_path / "imagenet/train"
    assert resolve_root("/abs/dir") == Path("/abs/dir")  # absolute roots are left alone


def test_relative_root_without_env_stays_relative(monkeypatch):
    monkeypatch.delenv(DATA_ENV, raising=False)
    assert resolve_root("imagenet/train") == Path("imagenet/train")


def test_env_vars_and_home_are_expanded(monkeypatch, tmp_path):
    monkeypatch.setenv("MY_DATA", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert resolve_root("$MY_DATA/cifar") == tmp_path / "cifar"
    assert resolve_root("~/celeba") == tmp_path / "home" / "celeba"


def test_missing_data_message_names_path_layout_and_fix(tmp_path):
    err = missing_data_error(tmp_path / "nowhere", "images as <root>/<class>/<image>")
    assert isinstance(err, FileNotFoundError)
    text = str(err)
    assert str(tmp_path / "nowhere") in text and "<root>/<class>/<image>" in text
    assert "data_root" in text and DATA_ENV in text


def test_dataset_uses_env_for_relative_root(monkeypatch, tmp_path):
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "in1k")):
        ImageFolderDataset("in1k", image_size=8)
