# DiCo-S U-shape with Swin window attention (DiCo Table 5's window row): 8x8 windows, 4/8/16 heads of 32, odd blocks shifted.
from mmengine.config import read_base

with read_base():
    from ..dico.dico_s_in256 import *

model.backbone.mixer = dict(type="window_attention", window_size=8)
