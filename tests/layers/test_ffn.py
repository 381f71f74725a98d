"""visionmix.layers.ffn: DiT's MLP, fc2(GELU-tanh(fc1 x)), in either layout."""
import pytest
import torch
import torch.nn.functional as F

from visionmix.layers.ffn import MlpFFN


def test_the_mlp_is_dits_formula_on_tokens_and_on_grids():
    ffn = MlpFFN(8, mlp_ratio=3.0).double()
    ffn.init_weights()
    x = torch.randn(2, 12, 8, dtype=torch.float64)
    hidden = F.gelu(x @ ffn.fc1.weight.T + ffn.fc1.bias, approximate="tanh")
    expected = hidden @ ffn.fc2.weight.T + ffn.fc2.bias
    assert ffn.fc1.out_features == 24
    torch.testing.assert_close(ffn(x, (3, 4)), expected)
    grid = x.view(2, 3, 4, 8).permute(0, 3, 1, 2)
    torch.testing.assert_close(ffn(grid, (3, 4)).permute(0, 2, 3, 1).reshape_as(x), expected)


def test_activations_and_the_scaffold_scheme():
    x = torch.randn(1, 4, 8)
    exact = MlpFFN(8, act="gelu")
    torch.testing.assert_close(exact(x, (2, 2)), exact.fc2(F.gelu(exact.fc1(x))))
    with pytest.raises(ValueError, match="unknown activation 'relu6'; choose one of \\['gelu', 'gelu_tanh', 'silu'\\]"):
        MlpFFN(8, act="relu6")
    seen = []
    MlpFFN(8).init_weights(seen.append)  # the scaffold's scheme visits the MLP and each of its layers
    assert [type(m).__name__ for m in seen][:3] == ["MlpFFN", "Linear", "GELU"]
