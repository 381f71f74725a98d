# DiT's optimisation: AdamW, lr 1e-4, no weight decay, constant schedule, 400k iterations at batch 256.
from mmengine.optim import OptimWrapper
from mmengine.runner import IterBasedTrainLoop
from torch.optim import AdamW

optim_wrapper = dict(type=OptimWrapper, optimizer=dict(type=AdamW, lr=1e-4, weight_decay=0.0, fused=True),
                     clip_grad=None, accumulative_counts=1)
param_scheduler = None
train_cfg = dict(type=IterBasedTrainLoop, max_iters=400_000)
val_cfg = None
val_dataloader = None
val_evaluator = None
test_cfg = None
