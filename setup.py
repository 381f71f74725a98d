"""Install visionmix; the top-level ``ops/`` folder (native WKV kernels) installs as ``visionmix.ops`` and
``configs/`` as ``visionmix/configs/`` (model-zoo rows name configs; ``visionmix.hub`` finds them there when no
checkout is around; relative ``read_base()`` imports work because the folder keeps its layout). The zoo table and
the weights and grids it ships (``visionmix/zoo/``) are package data.

Set ``VISIONMIX_BUILD_OPS=1`` to compile the native Bi-WKV op ahead of time; otherwise it is built
with ninja on first use (see ``ops/loader.py``).
"""
import os

from setuptools import find_packages, setup

packages = [p for p in find_packages(include=["visionmix", "visionmix.*"])] + ["visionmix.ops", "visionmix.configs"]
ext_modules, cmdclass = [], {}
if os.environ.get("VISIONMIX_BUILD_OPS") == "1":
    from ops.build import ahead_of_time_extensions  # torch is needed only for this path

    ext_modules, cmdclass = ahead_of_time_extensions()

setup(
    name="visionmix",
    version="0.1.0",
    description="Interchangeable token mixers (Bi-RWKV, linear attention, RetNet decay, Swin, DiCo conv, "
    "softmax attention) in shared diffusion scaffolds",
    python_requires=">=3.9",
    packages=packages,
    package_dir={"visionmix.ops": "ops", "visionmix.configs": "configs"},
    package_data={
        "visionmix.ops": ["csrc/*.h", "csrc/*.cpp", "csrc/*.cu"],
        "visionmix.configs": ["**/*.py"],
        "visionmix": ["zoo/*.yml", "zoo/digits/*.safetensors", "zoo/digits/*.png"],
    },
    entry_points={"console_scripts": ["visionmix = visionmix.commands:main"]},
    ext_modules=ext_modules,
    cmdclass=cmdclass,
    install_requires=[
        "torch>=2.1",
        "torchvision",
        "timm>=0.9",
        "mmengine>=0.10",
        "einops",
        "ninja",
        "pyyaml",
        "safetensors",
        "scikit-learn",
        "tqdm",
    ],
    extras_require={
        "latent": ["diffusers"],
        "metrics": ["torch-fidelity>=0.4"],  # the FID Inception network (its weights file is local: see tools/eval.py)
        "bench": ["matplotlib"],
        "tensorboard": ["tensorboard"],  # tools/train.py --tensorboard
        # fvcore: the tests' independent cross-check of the MAC counter (visionmix.flops counts with torch's own)
        "dev": ["pytest", "pytest-timeout", "diffusers", "matplotlib", "torch-fidelity>=0.4", "tensorboard", "fvcore"],
    },
)
