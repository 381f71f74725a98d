"""visionmix.engine.checkpoint: mmengine's loader schemes read every source as data."""
import pytest
import torch

from visionmix.checkpoint_io import CheckpointError
from visionmix.engine import checkpoint as schemes  # noqa: F401 - registers the loaders under test


def test_urls_are_read_as_data_and_other_remote_schemes_refused(tmp_path, monkeypatch):
    import functools
    import http.server
    import os
    import threading

    from mmengine.runner.checkpoint import CheckpointLoader

    class Exploit:
        def __reduce__(self):
            return os.system, (f"touch {tmp_path / 'ran'}",)

    served = tmp_path / "served"
    served.mkdir()
    torch.save({"state_dict": {"w": torch.ones(2)}}, served / "good.pth")
    torch.save({"state_dict": {"w": torch.ones(2)}, "x": Exploit()}, served / "evil.pth")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub"))
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        assert torch.equal(CheckpointLoader.load_checkpoint(f"{base}/good.pth")["state_dict"]["w"], torch.ones(2))
        with pytest.raises(CheckpointError, match="evil.pth holds the class/function posix.system"):
            CheckpointLoader.load_checkpoint(f"{base}/evil.pth")
        with pytest.raises(CheckpointError, match="load_from=.*/gone.pth: could not download it"):
            CheckpointLoader.load_checkpoint(f"{base}/gone.pth")
    finally:
        server.shutdown()
    for url in ("open-mmlab://resnet50", "s3://bucket/x.pth", "torchvision://resnet18", "pavi://x"):
        with pytest.raises(CheckpointError, match="reads checkpoints from local files, http.s. URLs and zoo:NAME"):
            CheckpointLoader.load_checkpoint(url)
    assert not (tmp_path / "ran").exists()
