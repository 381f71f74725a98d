# DRWKV-B/2 scaffold (long skips, adaLN-Zero, RWKV channel mix) with softmax attention: 6 heads of 64.
from mmengine.config import read_base

with read_base():
    from ..drwkv.drwkv_b2_in256 import *

model.backbone.mixer = dict(type="attention", qkv_bias=True)
