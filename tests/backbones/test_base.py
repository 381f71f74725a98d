import torch
import torch.nn as nn

from visionmix.backbones.base import Denoiser


class Part(nn.Module):
    """A part that owns its init: its Linear must keep the value it set."""

    def __init__(self):
        super().__init__()
        self.inner = nn.Linear(3, 3)

    def init_weights(self) -> None:
        nn.init.constant_(self.inner.weight, 7.0)


class Toy(Denoiser):
    def __init__(self):
        super().__init__()
        self.setup_interface(8, 3, learn_sigma=True, num_classes=4, size_divisor=2)
        self.build_embedders(16, class_dropout_prob=0.1)
        self.part = Part()
        self.plain = nn.Sequential(nn.Linear(3, 3), nn.ReLU())


def test_init_parts_leaves_owned_subtrees_to_their_part():
    toy = Toy()
    toy.init_parts(lambda m: nn.init.constant_(m.weight, -1.0) if isinstance(m, nn.Linear) else None)
    assert (toy.part.inner.weight == 7).all()
    assert (toy.plain[0].weight == -1).all()


def test_interface_attributes():
    toy = Toy()
    assert toy.input_size == (8, 8) and toy.out_channels == 6 and toy.conditional and toy.null_class == 4
    times, labels = toy.embed_conditions(torch.tensor(5), None, torch.zeros(3, 3, 8, 8), torch.float32)
    assert times[0].shape == (3, 16)
    torch.testing.assert_close(labels[0], toy.y_embedder.embedding_table.weight[4].expand(3, 16))
