"""Reference and sample batches in ADM's .npz format: reading, validation, completion and atomic saving."""
import numpy as np
import pytest

from visionmix.evaluation.reference import (Reference, complete_reference, load_batch, load_reference,
                                            save_reference)


def images(n=5, size=4, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)


def test_sample_batch_round_trip_and_errors(tmp_path):
    arr, labels = images(), np.arange(5)
    np.savez(tmp_path / "s.npz", arr_0=arr, labels=labels)
    got, got_labels = load_batch(tmp_path / "s.npz")
    assert np.array_equal(got, arr) and np.array_equal(got_labels, labels)
    np.savez(tmp_path / "nolabels.npz", arr_0=arr)
    assert load_batch(tmp_path / "nolabels.npz")[1] is None

    with pytest.raises(FileNotFoundError, match="samples file not found: .*missing.npz"):
        load_batch(tmp_path / "missing.npz")
    np.savez(tmp_path / "noarr.npz", images=arr)
    with pytest.raises(ValueError, match="has no arr_0 .*its arrays are images"):
        load_batch(tmp_path / "noarr.npz")
    np.savez(tmp_path / "nchw.npz", arr_0=arr.transpose(0, 3, 1, 2))
    with pytest.raises(ValueError, match=r"uint8 images \(N, H, W, 3\).*\(5, 3, 4, 4\)"):
        load_batch(tmp_path / "nchw.npz")
    np.savez(tmp_path / "float.npz", arr_0=arr.astype(np.float32))
    with pytest.raises(ValueError, match="got float32"):
        load_batch(tmp_path / "float.npz")
    (tmp_path / "text.npz").write_text("not a zip")
    with pytest.raises(ValueError, match="not an .npz"):
        load_batch(tmp_path / "text.npz")
    np.save(tmp_path / "single.npy", arr)
    with pytest.raises(ValueError, match="single .npy array"):
        load_batch(tmp_path / "single.npy")


def test_adm_style_reference_reads_stats_and_counts_images_lazily(tmp_path):
    mu, sigma = np.arange(3.0), np.eye(3)
    np.savez(tmp_path / "ref.npz", arr_0=images(7), mu=mu, sigma=sigma, mu_s=np.zeros(2), sigma_s=np.eye(2))
    ref = load_reference(tmp_path / "ref.npz")
    assert np.array_equal(ref.mu, mu) and np.array_equal(ref.sigma, sigma) and ref.features is None
    assert ref.has_images and ref.num_images == 7 and ref.images().shape == (7, 4, 4, 3)
    assert "precomputed mu/sigma" in ref.describe() and "7 images" in ref.describe()


def test_reference_errors_name_what_is_missing(tmp_path):
    np.savez(tmp_path / "mu_only.npz", mu=np.zeros(3))
    with pytest.raises(ValueError, match="mu without sigma"):
        load_reference(tmp_path / "mu_only.npz")
    np.savez(tmp_path / "nothing.npz", labels=np.arange(3))
    with pytest.raises(ValueError, match="none of arr_0 .*its arrays are labels"):
        load_reference(tmp_path / "nothing.npz")
    np.savez(tmp_path / "shapes.npz", mu=np.zeros(3), sigma=np.eye(2))
    with pytest.raises(ValueError, match=r"sigma \(D, D\)"):
        load_reference(tmp_path / "shapes.npz")
    np.savez(tmp_path / "stats.npz", mu=np.zeros(2), sigma=np.eye(2))
    ref = load_reference(tmp_path / "stats.npz")
    with pytest.raises(ValueError, match="precision/recall need one of them"):
        complete_reference(ref, lambda x: None, need_features=True)


def test_complete_reference_extracts_features_only_when_needed():
    calls = []

    def extract(x):  # a stand-in feature extractor: the mean pixel of each channel
        calls.append(len(x))
        return x.reshape(len(x), -1, 3).mean(axis=1)

    arr = images(6)
    ref = Reference("r.npz", has_images=True, num_images=6)
    ref.images = lambda: arr  # as if read from the file
    complete_reference(ref, extract, need_features=False)
    feats = arr.reshape(6, -1, 3).mean(axis=1)
    # closed form: the mean and the unbiased covariance of the features
    assert calls == [6] and np.allclose(ref.mu, feats.mean(0))
    centred = feats - feats.mean(0)
    assert np.allclose(ref.sigma, centred.T @ centred / 5)

    stats_only = Reference("s.npz", mu=np.zeros(3), sigma=np.eye(3), has_images=True, num_images=6)
    stats_only.images = lambda: arr
    complete_reference(stats_only, extract, need_features=False)
    assert calls == [6] and stats_only.features is None  # statistics were there: no extraction
    complete_reference(stats_only, extract, need_features=True)
    assert calls == [6, 6] and np.array_equal(stats_only.mu, np.zeros(3))  # file statistics kept


def test_save_reference_is_readable_and_atomic(tmp_path, monkeypatch):
    feats = np.random.default_rng(0).normal(size=(10, 3))
    save_reference(tmp_path / "out" / "mine.npz", features=feats)
    ref = load_reference(tmp_path / "out" / "mine.npz")
    centred = feats - feats.mean(0)
    assert np.allclose(ref.mu, feats.mean(0)) and np.allclose(ref.sigma, centred.T @ centred / 9)
    assert np.allclose(ref.features, feats) and not ref.has_images
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["mine.npz"]

    def broken_savez(f, **arrays):
        f.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        save_reference(tmp_path / "out" / "mine.npz", mu=np.zeros(2), sigma=np.eye(2))
    # the old file is untouched and no temporary file is left behind
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["mine.npz"]
    assert np.allclose(load_reference(tmp_path / "out" / "mine.npz").features, feats)
    with pytest.raises(ValueError, match="needs features, or both mu and sigma"):
        save_reference(tmp_path / "x.npz", mu=np.zeros(2))
