# DiCo-S U-shape with CFSR's large-kernel convolutional modulation (dw 9x9) in place of DiCo's conv module.
from mmengine.config import read_base

with read_base():
    from ..dico.dico_s_in256 import *

model.backbone.mixer = dict(type="conv_mixer", kernel_size=9)
