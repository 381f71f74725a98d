# DRWKV-B/2 scaffold with BAR-Net's band-modulated axial retention (4 DCT bands, decomposed Manhattan decay): 6 heads.
from mmengine.config import read_base

with read_base():
    from ..drwkv.drwkv_b2_in256 import *

model.backbone.mixer = dict(type="band_retnet")
