# Model-zoo row `drwkv_digits`: the quickstart digits scaffold (configs/quickstart/drwkv_digits8.py: 1.8M parameters,
# 7 blocks of width 112, 1000 iterations) with the `bi_rwkv` mixer at its defaults, the same recipe for every mixer.
from mmengine.config import read_base

with read_base():
    from ..quickstart.drwkv_digits8 import *

# the quickstart itself: its mixer is already bi_rwkv
work_dir = "work_dirs/zoo/drwkv_digits"
