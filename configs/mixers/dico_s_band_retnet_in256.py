# DiCo-S U-shape with BAR-Net's band-modulated axial retention: 4/8/16 heads of 32.
from mmengine.config import read_base

with read_base():
    from ..dico.dico_s_in256 import *

model.backbone.mixer = dict(type="band_retnet")
