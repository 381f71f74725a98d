# sklearn's bundled 8x8 handwritten digits (10 classes): real data that ships with the code.
from mmengine.dataset import InfiniteSampler

from visionmix.datasets import DigitsDataset

train_dataloader = dict(
    batch_size=64,
    num_workers=0,
    sampler=dict(type=InfiniteSampler, shuffle=True),
    collate_fn=dict(type="default_collate"),
    dataset=dict(type=DigitsDataset, image_size=8, split="train"),
)
