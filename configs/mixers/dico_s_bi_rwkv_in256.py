# DiCo-S U-shape with Bi-RWKV spatial mix (Diffusion-RWKV's mixer; the channel mix stays DiCo's GELU MLP).
from mmengine.config import read_base

with read_base():
    from ..dico.dico_s_in256 import *

model.backbone.mixer = dict(type="bi_rwkv", init_mode="fancy")
