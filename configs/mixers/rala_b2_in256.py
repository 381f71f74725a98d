# DRWKV-B/2 scaffold with RAVLT's rank-augmented linear attention (query-aware key weights, 2-D RoPE, LePE 5x5, gate): 6 heads.
from mmengine.config import read_base

with read_base():
    from ..drwkv.drwkv_b2_in256 import *

model.backbone.mixer = dict(type="rala", lepe_kernel_size=5)
