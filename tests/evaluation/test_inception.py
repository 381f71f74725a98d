"""The FID Inception extractor without the real weights: torchvision's Inception-v3 layout (the same state-dict keys
as torch-fidelity's port) filled with random weights and saved under the expected file name, found through the
environment variable or the cache folders; features checked for shape, determinism, input-format invariance and
the unbiased-logits contract (logits = pool3 @ W^T, computed here by hand from the saved file)."""
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("torch_fidelity")
from visionmix.evaluation.inception import (ENV, WEIGHTS_NAME, WEIGHTS_NAMES, WEIGHTS_URL,  # noqa: E402
                                            InceptionFeatures, find_weights, to_uint8_nchw)


def random_inception_state(seed: int = 0) -> dict:
    """A random state dict with the FID Inception's keys; He-normal convolutions and identity batch norms keep
    activations O(1) through the 40-odd layers, so the features are far from all-zero."""
    import torchvision

    net = torchvision.models.inception_v3(weights=None, aux_logits=False, num_classes=1008, init_weights=False)
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in net.state_dict().items():
        if key.endswith("conv.weight"):
            fan_in = value[0].numel()
            value = torch.randn(value.shape, generator=gen) * (2.0 / fan_in) ** 0.5
        elif key.endswith(("bn.weight", "bn.running_var")):
            value = torch.ones_like(value)
        elif key.endswith(("bn.bias", "bn.running_mean")):
            value = torch.zeros_like(value)
        elif key.startswith("fc."):
            value = torch.randn(value.shape, generator=gen) * 0.05
        state[key] = value
    return state


def write_random_weights(folder: Path, name: str = WEIGHTS_NAME, seed: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(random_inception_state(seed), folder / name)
    return folder / name


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    return write_random_weights(tmp_path_factory.mktemp("inception"))


@pytest.fixture(scope="module")
def extractor(weights) -> InceptionFeatures:
    with pytest.warns(UserWarning, match="not the FID Inception weights"):  # random weights: wrong sha256
        return InceptionFeatures(weights)


@pytest.fixture
def no_weights_anywhere(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path


def test_missing_weights_say_what_to_download_and_where(no_weights_anywhere):
    with pytest.raises(FileNotFoundError) as err:
        find_weights()
    message = str(err.value)
    for part in (WEIGHTS_NAME, WEIGHTS_URL, ENV, str(no_weights_anywhere / "home" / ".cache" / "visionmix")):
        assert part in message
    from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3

    assert WEIGHTS_URL == URL_INCEPTION_V3  # the URL we name is the one torch-fidelity downloads from


def test_an_explicit_path_is_never_replaced_by_another_copy(no_weights_anywhere, monkeypatch):
    home_copy = write_random_weights(no_weights_anywhere / "home" / ".cache" / "visionmix")
    assert find_weights() == home_copy
    monkeypatch.setenv(ENV, str(no_weights_anywhere / "elsewhere.pth"))
    with pytest.raises(FileNotFoundError, match=f"elsewhere.pth \\(\\${ENV}\\)"):
        find_weights()
    with pytest.raises(FileNotFoundError, match="nope.pth \\(the given path\\)"):
        find_weights(no_weights_anywhere / "nope.pth")


def test_search_order_env_folder_then_cache_then_torch_hub(no_weights_anywhere, monkeypatch):
    hub_copy = write_random_weights(no_weights_anywhere / "torch" / "hub" / "checkpoints", WEIGHTS_NAMES[1])
    assert find_weights() == hub_copy  # torch-fidelity's own download, under its own name
    home_copy = write_random_weights(no_weights_anywhere / "home" / ".cache" / "visionmix")
    assert find_weights() == home_copy
    env_copy = write_random_weights(no_weights_anywhere / "mine")
    monkeypatch.setenv(ENV, str(env_copy.parent))  # a folder holding the file
    assert find_weights() == env_copy
    monkeypatch.setenv(ENV, str(env_copy))
    assert find_weights() == env_copy


def test_features_shapes_determinism_and_input_formats(extractor, weights):
    rng = np.random.default_rng(0)
    nhwc = rng.integers(0, 256, size=(3, 8, 8, 3), dtype=np.uint8)
    out = extractor(nhwc, batch_size=2, progress=False)
    assert out["pool"].shape == (3, 2048) and out["logits"].shape == (3, 1008)
    assert out["pool"].dtype == np.float32 and np.isfinite(out["pool"]).all()
    assert out["pool"].std(axis=0).mean() > 1e-3  # different images, different features (not a dead network)

    again = extractor(torch.from_numpy(nhwc), batch_size=3, progress=False)
    for key in out:
        np.testing.assert_allclose(again[key], out[key], rtol=1e-5, atol=1e-6)  # batching only reorders sums

    # float [-1, 1] NCHW holding the same 8-bit values: exactly the same input to the network
    as_float = torch.from_numpy(nhwc).permute(0, 3, 1, 2).float() / 127.5 - 1
    from_float = extractor(as_float, batch_size=2, progress=False)
    for key in out:
        np.testing.assert_array_equal(from_float[key], out[key])

    # unbiased logits: pool3 @ W^T of the saved file, without the softmax bias
    w = torch.load(weights, weights_only=True)["fc.weight"].double().numpy()
    np.testing.assert_allclose(out["logits"], out["pool"].astype(np.float64) @ w.T, rtol=1e-4, atol=1e-5)

    grey = rng.integers(0, 256, size=(2, 8, 8, 1), dtype=np.uint8)
    np.testing.assert_array_equal(extractor(grey, progress=False)["pool"],
                                  extractor(grey.repeat(3, axis=-1), progress=False)["pool"])


def test_input_conversion_and_errors():
    x = torch.tensor([-1.0, -0.5, 0.0, 1.0, 2.0]).view(1, 1, 1, 5)
    # round((x + 1) * 127.5), clamped: -0.5 -> 63.75 -> 64, 0 -> 127.5 -> 128 (round half to even)
    assert to_uint8_nchw(x)[0, :, 0].tolist() == [[0, 64, 128, 255, 255]] * 3
    with pytest.raises(ValueError, match=r"uint8 images must be \(N, H, W, 1 or 3\)"):
        to_uint8_nchw(np.zeros((2, 3, 8, 8), np.uint8))
    with pytest.raises(ValueError, match=r"float images must be \(N, 1 or 3, H, W\)"):
        to_uint8_nchw(np.zeros((2, 8, 8, 3), np.float32))
    with pytest.raises(ValueError, match="4 dimensions"):
        to_uint8_nchw(np.zeros((8, 8, 3), np.uint8))


def test_unreadable_or_foreign_files_are_refused(tmp_path):
    (tmp_path / WEIGHTS_NAME).write_bytes(b"garbage")
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="not a readable PyTorch state dict"):
        InceptionFeatures(tmp_path / WEIGHTS_NAME)
    torch.save({"fc.weight": torch.zeros(2, 2)}, tmp_path / "other.pth")
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="does not fit torch-fidelity's Inception-v3"):
        InceptionFeatures(tmp_path / "other.pth")


def test_cuda_matches_cpu(extractor, weights):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    with pytest.warns(UserWarning):
        gpu = InceptionFeatures(weights, device="cuda")
    images = np.random.default_rng(1).integers(0, 256, size=(4, 32, 32, 3), dtype=np.uint8)
    np.testing.assert_allclose(gpu(images, progress=False)["pool"], extractor(images, progress=False)["pool"],
                               rtol=1e-3, atol=1e-3)
