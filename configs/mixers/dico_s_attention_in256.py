# DiCo-S U-shape with softmax attention in every block (DiCo Table 5's self-attention row): 4/8/16 heads of 32.
from mmengine.config import read_base

with read_base():
    from ..dico.dico_s_in256 import *

model.backbone.mixer = dict(type="attention", qkv_bias=True)
