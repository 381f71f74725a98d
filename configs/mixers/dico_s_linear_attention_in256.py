# DiCo-S U-shape with focused linear attention + 5x5 rank enhancement (DiCo Table 5's linear-attention row): 4/8/16 heads of 32.
from mmengine.config import read_base

with read_base():
    from ..dico.dico_s_in256 import *

model.backbone.mixer = dict(type="linear_attention", feature_map="focused", focusing_factor=3.0, rank_enhance=5)
