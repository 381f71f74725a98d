import torch

from visionmix.layers.cache import grid_cache
from visionmix.layers.qshift import q_shift


def test_table_first_built_while_sampling_serves_training():
    calls = []

    @grid_cache(4)
    def index(n: int) -> torch.Tensor:
        calls.append(n)
        return torch.arange(n)

    with torch.inference_mode():
        index(5)
    x = torch.randn(5, requires_grad=True)
    x.gather(0, index(5)).sum().backward()  # would fail if the cached index were an inference tensor
    assert calls == [5] and torch.equal(x.grad, torch.ones(5))


def test_q_shift_index_cached_under_inference_mode_still_trains():
    with torch.inference_mode():
        q_shift(torch.randn(1, 6, 8), (2, 3))
    x = torch.randn(1, 6, 8, requires_grad=True)
    q_shift(x, (2, 3)).sum().backward()
    assert x.grad is not None
