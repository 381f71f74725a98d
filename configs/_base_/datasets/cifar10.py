# CIFAR-10 pixels (3x32x32, 10 classes) from the standard python version (cifar-10-batches-py).
from mmengine.dataset import InfiniteSampler

from visionmix.datasets import CIFAR10Dataset

data_root = "data/cifar10"

train_dataloader = dict(
    batch_size=128,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type=InfiniteSampler, shuffle=True),
    collate_fn=dict(type="default_collate"),
    dataset=dict(type=CIFAR10Dataset, root=data_root, train=True, random_flip=True),
)
