# DRWKV-B/2 scaffold with DiCo's conv module (1x1, dw3x3, GELU, channel attention, 1x1) as the token mixer.
from mmengine.config import read_base

with read_base():
    from ..drwkv.drwkv_b2_in256 import *

model.backbone.mixer = dict(type="dico_conv", kernel_size=3)
