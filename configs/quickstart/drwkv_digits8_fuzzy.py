# The quickstart with ViTAR's fuzzy positions instead of trainable sin-cos ones: trained on 8x8 digits, it samples at
# other sizes (tools/eval_digits.py --image-size 12 16). The quickstart itself is the baseline (its sin-cos table
# is resampled bicubically at other sizes).
from mmengine.config import read_base

with read_base():
    from .drwkv_digits8 import *

model.backbone.pos_embed = "fuzzy"
work_dir = "work_dirs/quickstart_drwkv_digits8_fuzzy"
