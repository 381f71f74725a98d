# DiCo-S U-shape with SSViT's sparse-scan attention: kernel 7, 4/8/16 heads of 32.
from mmengine.config import read_base

with read_base():
    from ..dico.dico_s_in256 import *

model.backbone.mixer = dict(type="sparse_scan_attention", kernel_size=7)
