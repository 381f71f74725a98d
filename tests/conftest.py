import pytest
import torch


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def randomize_(module: torch.nn.Module, std: float = 0.05) -> torch.nn.Module:
    """Overwrite every parameter with noise: zero-initialised models hide conditioning bugs."""
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0.0, std)
    return module
