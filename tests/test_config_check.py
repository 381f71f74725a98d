"""check_config: every key of a config is checked against the component that reads it, before any build."""
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

from visionmix.config import load_config
from visionmix.config_check import ConfigError, check_config

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted(p for p in (ROOT / "configs").glob("*/*.py") if p.parent.name != "_base_")
DIGITS = ROOT / "configs/quickstart/drwkv_digits8.py"  # custom_hooks: ema, nan_guard, rng_state, sample_grid


def first_line(err: pytest.ExceptionInfo) -> str:
    return str(err.value).splitlines()[0]


def did_you_mean(where: str, cls: str, key: str, hint: str) -> str:
    return f"{where} ({cls}) has no argument {key!r} (did you mean {hint!r}?)"


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_config_passes_unchanged(path):
    check_config(load_config(path))  # the ImageNet configs' data roots do not exist here: nothing is loaded


BAD = [
    ({"default_hooks.checkpoint.intervl": 1}, did_you_mean("default_hooks.checkpoint", "CheckpointHook", "intervl",
                                                           "interval")),
    ({"trian_cfg.max_iters": 3}, "unknown top-level config key 'trian_cfg' (did you mean 'train_cfg'?); "
                                 "declare your own variables in user_keys = [...]"),
    ({"optim_wrapper.optimizer.lrr": 1e-3}, did_you_mean("optim_wrapper.optimizer", "AdamW", "lrr", "lr")),
    ({"optim_wrapper.clipgrad": None}, did_you_mean("optim_wrapper", "OptimWrapper", "clipgrad", "clip_grad")),
    ({"optim_wrapper.type": "AmpOptimWrapper", "optim_wrapper.dtyp": "bfloat16"},  # **kwargs -> OptimWrapper
     did_you_mean("optim_wrapper", "AmpOptimWrapper", "dtyp", "dtype")),
    ({"model.backbone.mixer.shift_pixl": 1}, did_you_mean("model.backbone.mixer", "BiRWKV", "shift_pixl",
                                                          "shift_pixel")),
    ({"model.backbone.mixer": "attention:qk_nrom=True"}, did_you_mean("model.backbone.mixer", "Attention", "qk_nrom",
                                                                      "qk_norm")),
    ({"model.backbone.ffn.hidden_rat": 2}, did_you_mean("model.backbone.ffn", "RWKVChannelMix", "hidden_rat",
                                                        "hidden_rate")),
    ({"model.backbone.depht": 3}, did_you_mean("model.backbone", "IsotropicBackbone", "depht", "depth")),
    ({"model.diffusion.num_timestep": 9}, did_you_mean("model.diffusion", "GaussianDiffusion", "num_timestep",
                                                       "num_timesteps")),
    ({"model.data_preprocessor.latent_scal": 1.0}, did_you_mean("model.data_preprocessor", "DiffusionDataPreprocessor",
                                                                "latent_scal", "latent_scale")),
    ({"model.sampling.stpes": 10}, did_you_mean("model.sampling", "DiffusionModel.sample", "stpes", "steps")),
    ({"custom_hooks.sample_grid.sampling": {"cfg_scal": 2.0}},
     did_you_mean("custom_hooks[3].sampling", "DiffusionModel.sample", "cfg_scal", "cfg_scale")),
    ({"train_dataloader.dataset.imag_size": 8}, did_you_mean("train_dataloader.dataset", "DigitsDataset", "imag_size",
                                                             "image_size")),
    ({"train_dataloader.sampler.shufle": True}, did_you_mean("train_dataloader.sampler", "InfiniteSampler", "shufle",
                                                             "shuffle")),
    ({"train_dataloader.batch_sise": 8}, did_you_mean("train_dataloader", "DataLoader", "batch_sise", "batch_size")),
    ({"custom_hooks.ema.momentm": 0.1}, did_you_mean("custom_hooks[0]", "EMAHook", "momentm", "momentum")),
    ({"custom_hooks.ema.type": "EMAHok"}, "unknown type 'EMAHok' at custom_hooks[0] (did you mean 'EMAHook'?)"),
    ({"train_cfg.max_iter": 3}, did_you_mean("train_cfg", "IterBasedTrainLoop", "max_iter", "max_iters")),
    ({"param_scheduler": [dict(type="LinearLR", start_fctor=0.1, by_epoch=False, end=10)]},
     did_you_mean("param_scheduler[0]", "LinearLR", "start_fctor", "start_factor")),
    ({"log_processor.windowsize": 10}, did_you_mean("log_processor", "LogProcessor", "windowsize", "window_size")),
    ({"randomness.sead": 1}, did_you_mean("randomness", "Runner.set_randomness", "sead", "seed")),
]


@pytest.mark.parametrize("options, expected", BAD, ids=[next(iter(o)) for o, _ in BAD])
def test_bad_override_names_the_place_and_the_closest_argument(options, expected):
    with pytest.raises(ConfigError) as err:
        check_config(load_config(DIGITS, options))
    assert first_line(err) == expected


GOOD = [
    {"model.backbone.mixer": "linear_attention"},
    {"model.backbone.mixer": "attention:qk_norm=True"},
    {"optim_wrapper.type": "AmpOptimWrapper", "optim_wrapper.dtype": "bfloat16"},  # what train.py --amp sets
    {"param_scheduler": [dict(type="LinearLR", start_factor=0.1, by_epoch=False, end=10)]},
    {"default_hooks.checkpoint": None},  # disables mmengine's default hook
    {"custom_hooks.sample_grid.sampling": {"steps": 10, "eta": 0.0}},
    {"user_keys": ["lr_base"], "lr_base": 1e-3},
    {"custom_hooks.ema.type": "mmengine.hooks.EMAHook", "optim_wrapper.optimizer.type": "torch.optim.AdamW"},
]


@pytest.mark.parametrize("options", GOOD, ids=[next(iter(o)) for o in GOOD])
def test_valid_overrides_pass(options):
    check_config(load_config(DIGITS, options))


def test_hook_name_from_another_registry_says_where_it_is_registered():
    with pytest.raises(ConfigError, match=r"^custom_hooks\[0\]: unknown hook 'attention'.*registered token mixer"):
        check_config(load_config(DIGITS, {"custom_hooks.ema.type": "attention"}))


def test_model_type_must_be_one_the_runner_can_build():
    # the Runner builds the model through mmengine's MODELS, where visionmix's short names are unknown
    with pytest.raises(ConfigError, match=r"^model: unknown model 'DiffusionModel'"):
        check_config(load_config(DIGITS, {"model.type": "DiffusionModel"}))
    check_config(load_config(DIGITS, {"model.type": "visionmix.models.DiffusionModel"}))


def test_user_variables_must_be_declared(tmp_path):
    path = tmp_path / "mine.py"
    path.write_text("from torch.optim import AdamW\n_private = 1\nbase_lr = 1e-3\n"
                    "optim_wrapper = dict(optimizer=dict(type=AdamW, lr=base_lr))\n")
    with pytest.raises(ConfigError, match=r"^unknown top-level config key 'base_lr' .*declare your own .* user_keys"):
        check_config(load_config(path))  # the imported AdamW and _private are no keys
    path.write_text(path.read_text() + "user_keys = ['base_lr']\n")
    check_config(load_config(path))
    with pytest.raises(ConfigError, match="user_keys must be a list of strings"):
        check_config(load_config(path, {"user_keys": 3}))


def test_config_loaded_without_load_config_is_checked_too():
    cfg = Config.fromfile(str(DIGITS))  # custom_hooks still a dict of named hooks
    cfg.merge_from_dict({"custom_hooks.ema.momentm": 0.1})
    with pytest.raises(ConfigError) as err:
        check_config(cfg)
    assert first_line(err) == did_you_mean("custom_hooks.ema", "EMAHook", "momentm", "momentum")


def test_check_builds_no_module(monkeypatch):
    cfg = load_config(DIGITS)

    def boom(*args, **kwargs):
        raise AssertionError("check_config built a module")

    monkeypatch.setattr(torch.nn.Module, "__init__", boom)
    check_config(cfg)
