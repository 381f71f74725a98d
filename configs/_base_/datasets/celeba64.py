# CelebA aligned faces, 140x140 center crop resized to 64x64, unconditional.
from mmengine.dataset import InfiniteSampler

from visionmix.datasets import CelebADataset

data_root = "data/celeba/img_align_celeba"

train_dataloader = dict(
    batch_size=128,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type=InfiniteSampler, shuffle=True),
    collate_fn=dict(type="default_collate"),
    dataset=dict(type=CelebADataset, root=data_root, image_size=64, random_flip=True),
)
