# DRWKV-B/2 scaffold with SSViT's sparse-scan attention (local 7x7 then dilated neighbourhood attention, roles swapped on odd blocks): 6 heads.
from mmengine.config import read_base

with read_base():
    from ..drwkv.drwkv_b2_in256 import *

model.backbone.mixer = dict(type="sparse_scan_attention", kernel_size=7)
