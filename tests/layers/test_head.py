import torch

from visionmix.layers.head import AdaLNFinalLayer, unpatchify


def test_unpatchify_inverts_dit_patch_order():
    b, c, p, h, w = 2, 3, 2, 3, 5
    img = torch.randn(b, c, h * p, w * p)
    # token (i, j) holds the p x p x c patch flattened as (row-in-patch, col-in-patch, channel)
    tokens = torch.stack([img[:, :, i * p:(i + 1) * p, j * p:(j + 1) * p].permute(0, 2, 3, 1).reshape(b, -1)
                          for i in range(h) for j in range(w)], dim=1)
    torch.testing.assert_close(unpatchify(tokens, (h, w), p), img)


def test_final_layer_starts_at_zero():
    head = AdaLNFinalLayer(8, 2, 3)
    head.init_weights()
    assert head(torch.randn(2, 5, 8), torch.randn(2, 8)).abs().sum() == 0
