# ImageNet-256 as cached SD-VAE latents (4x32x32, with flipped copies), made once by
#   python tools/extract_latents.py --data-root data/imagenet/train --image-size 256 --vae data/sd-vae-ft-ema \
#       --out data/imagenet/latents256
# Point data_root (or --data-root) at the output folder.
from mmengine.dataset import InfiniteSampler

from visionmix.datasets import LatentDataset

data_root = "data/imagenet/latents256"
vae_root = "data/sd-vae-ft-ema"  # only for decoding sample grids

train_dataloader = dict(
    batch_size=32,  # per process: 8 processes x 32 = DiT's global batch of 256
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type=InfiniteSampler, shuffle=True),
    collate_fn=dict(type="default_collate"),
    dataset=dict(type=LatentDataset, root=data_root, random_flip=True),
)
