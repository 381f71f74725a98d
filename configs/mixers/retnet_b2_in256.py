# DRWKV-B/2 scaffold with RMT's Manhattan attention, decomposed (RMT's high-resolution form): 6 heads, gamma_h = 1 - 2^-(2 + 6h/6).
from mmengine.config import read_base

with read_base():
    from ..drwkv.drwkv_b2_in256 import *

model.backbone.mixer = dict(type="retnet", decomposed=True)
