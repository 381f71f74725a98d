# DRWKV-B/2 scaffold with Swin window attention: 6 heads, 8x8 windows (4 per 16x16 token grid), odd blocks shifted.
from mmengine.config import read_base

with read_base():
    from ..drwkv.drwkv_b2_in256 import *

model.backbone.mixer = dict(type="window_attention", window_size=8)
