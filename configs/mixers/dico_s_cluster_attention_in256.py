# DiCo-S U-shape with SecViT's clustering attention: 64 tokens per cluster, 4/8/16 heads of 32.
from mmengine.config import read_base

with read_base():
    from ..dico.dico_s_in256 import *

model.backbone.mixer = dict(type="cluster_attention", cluster_size=64)
