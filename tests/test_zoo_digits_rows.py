"""Every mixer's digits row of the real zoo table loads offline from the shipped file and samples digits."""
from __future__ import annotations

import os

import pytest
import torch

from visionmix import hub, list_mixers
from visionmix.evaluation import DigitsScorer

DIGITS_ROWS = [name for name in hub.list_models() if hub.model_info(name)["config"].startswith("configs/quickstart/")]


def test_every_registered_mixer_has_a_trained_digits_row():
    mixers = {hub.model_info(name)["mixer"] for name in DIGITS_ROWS}
    assert mixers == set(list_mixers())
    for name in DIGITS_ROWS:
        row = hub.model_info(name)
        assert "status" not in row, f"{name} is not trained yet: visionmix zoo reproduce {name}"
        assert len(row["sha256"]) == 64 and set(row["quality"]) >= {"agreement", "agreement_cfg3", "frechet"}


@pytest.mark.parametrize("name", DIGITS_ROWS)
def test_row_loads_from_the_package_and_its_samples_are_digits(name, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # a shipped row never touches the download cache
    monkeypatch.delenv("VISIONMIX_ZOO_MIRROR", raising=False)
    model, info = hub.load_pretrained(name)
    assert os.path.getsize(info["weights_path"]) <= 4 * 2**20
    assert not any(tmp_path.iterdir())
    labels = torch.arange(10).repeat_interleave(2)
    images = model.sample(labels, generator=torch.Generator().manual_seed(0), cfg_scale=3.0, steps=25)
    assert images.shape == (20, 1, 8, 8)
    # the scorer is an independent classifier: a trained row's guided samples are mostly the requested digit
    assert DigitsScorer.fit().score(images, labels)["agreement"] >= 0.7
