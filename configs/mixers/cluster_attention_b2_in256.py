# DRWKV-B/2 scaffold with SecViT's semantic-equitable clustering attention: 64 tokens per cluster (4 clusters on 16x16), 6 heads.
from mmengine.config import read_base

with read_base():
    from ..drwkv.drwkv_b2_in256 import *

model.backbone.mixer = dict(type="cluster_attention", cluster_size=64)
