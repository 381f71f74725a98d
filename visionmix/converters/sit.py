"""SiT (Ma et al. 2024, willisma/SiT ``models.py``) -> visionmix's isotropic backbone + ``FlowMatching``.

SiT's network is DiT's, parameter for parameter, so the key layout and renames are DiT's
(:mod:`visionmix.converters.dit`); only the objective differs (velocity on the linear path
x_t = t x_1 + (1 - t) x_0, the model called with t in [0, 1]), and that lives in the config
(``configs/sit/sit_xl2_in256.py``), not in the weights.

The released SiT-XL/2 256 file is a plain state dict built with ``learn_sigma=True``: its head predicts
2 x 4 channels and SiT's forward keeps the first 4 (``x.chunk(2, dim=1)[0]``). visionmix keeps the head
as it is and ``FlowMatching.velocity`` takes the first C of 2C channels, the same half. ``train.py``
checkpoints wrap the weights as ``{"model", "ema", "opt", "args"}`` (``args`` an argparse Namespace);
the samplers read ``"ema"``. A model trained with ``learn_sigma=False`` converts the same way and loads with
``--cfg-options model.backbone.learn_sigma=False``.
"""
from __future__ import annotations

from .dit import LAYOUT
from .source import Release, Source

SOURCE = Source(
    name="sit",
    title="SiT",
    layout=LAYOUT,
    wrappers=("ema", "model"),
    releases=(
        Release("SiT-XL/2 256x256",
                "https://www.dl.dropboxusercontent.com/scl/fi/as9oeomcbub47de5g4be0/SiT-XL-2-256.pt"
                "?rlkey=uxzxmpicu46coq3msb17b9ofa&dl=0",
                "configs/sit/sit_xl2_in256.py",
                "saved locally as SiT-XL-2-256x256.pt by SiT's download.py; learn_sigma=True"),
    ),
)
