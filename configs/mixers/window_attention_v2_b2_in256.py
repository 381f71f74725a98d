# DRWKV-B/2 scaffold with Swin-V2 window attention: scaled cosine logits and the log-spaced continuous position bias (window size can change at inference), 8x8 windows.
from mmengine.config import read_base

with read_base():
    from ..drwkv.drwkv_b2_in256 import *

model.backbone.mixer = dict(type="window_attention", window_size=8, cosine=True, position_bias="continuous")
