# DRWKV-B/2 scaffold with LAformer's mixer (RELA: linear attention + 3x3 rank conv, plus a channel-attention branch): 6 heads.
from mmengine.config import read_base

with read_base():
    from ..drwkv.drwkv_b2_in256 import *

model.backbone.mixer = dict(type="laformer")
