# Model-zoo row `rala_digits`: the quickstart digits scaffold (configs/quickstart/drwkv_digits8.py: 1.8M parameters,
# 7 blocks of width 112, 1000 iterations) with the `rala` mixer at its defaults, the same recipe for every mixer.
from mmengine.config import read_base

with read_base():
    from ..quickstart.drwkv_digits8 import *

model.backbone.mixer = dict(type="rala")
work_dir = "work_dirs/zoo/rala_digits"
