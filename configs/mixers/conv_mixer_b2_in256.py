# DRWKV-B/2 scaffold with CFSR's large-kernel convolutional modulation (dw 9x9) as the token mixer.
from mmengine.config import read_base

with read_base():
    from ..drwkv.drwkv_b2_in256 import *

model.backbone.mixer = dict(type="conv_mixer", kernel_size=9)
