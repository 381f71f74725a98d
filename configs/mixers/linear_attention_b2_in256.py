# DRWKV-B/2 scaffold with FLatten's focused linear attention (p = 3) plus its 5x5 depthwise rank enhancement: 6 heads.
from mmengine.config import read_base

with read_base():
    from ..drwkv.drwkv_b2_in256 import *

model.backbone.mixer = dict(type="linear_attention", feature_map="focused", focusing_factor=3.0, rank_enhance=5)
