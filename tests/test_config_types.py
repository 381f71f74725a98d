"""A string ``type`` is data: only registered names and classes on the allow-list ever resolve.

mmengine's Registry.get imports and returns any dotted path; these tests check that no config (YAML, .py,
override) can make visionmix or the Runner import or call one outside the allow-list.
"""
import sys
from pathlib import Path

import pytest
import yaml

from visionmix import allowlist
from visionmix.config import load_config
from visionmix.config_check import ConfigError, check_config
from visionmix.mixers.attention import Attention
from visionmix.registry import MIXERS, MODELS, UntrustedTypeError, build_model, resolve_type

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "configs/quickstart/drwkv_digits8.py"  # custom_hooks: ema, nan_guard, rng_state, sample_grid
BAD = ["os.system", "subprocess.call", "builtins.exec"]
PLACES = {  # where a type may hide -> the path the error names
    "custom_hooks": "custom_hooks[4]",
    "model": "model",
    "mixer": "model.backbone.mixer",
    "data_preprocessor": "model.data_preprocessor",
    "optimizer": "optim_wrapper.optimizer",
    "ema_type": "custom_hooks[0].ema_type",
}


@pytest.fixture(autouse=True)
def fresh_trust(monkeypatch):
    """Trust a config extends lasts for the process: start each test from the built-in list."""
    monkeypatch.setattr(allowlist, "_user_prefixes", set())


def plant(cfg: dict, place: str, bad: str, marker: Path) -> dict:
    """Put ``bad`` as a type at ``place``, with arguments that would create ``marker`` if it were ever called."""
    spec = {"os.system": dict(command=f"touch {marker}"), "subprocess.call": dict(args=["touch", str(marker)]),
            "builtins.exec": dict(source=f"open({str(marker)!r}, 'w')")}[bad]
    if place == "custom_hooks":
        cfg["custom_hooks"].append(dict(type=bad, **spec))
    elif place == "model":
        cfg["model"] = dict(type=bad, **spec)
    elif place == "mixer":
        cfg["model"]["backbone"]["mixer"] = dict(type=bad, **spec)
    elif place == "data_preprocessor":
        cfg["model"]["data_preprocessor"] = dict(type=bad, **spec)
    elif place == "optimizer":
        cfg["optim_wrapper"]["optimizer"] = dict(type=bad, **spec)
    else:
        cfg["custom_hooks"][0]["ema_type"] = bad
    return cfg


def refused(bad: str, where: str) -> str:
    return (f"type '{bad}' at {where} is not allowed: a config string may name visionmix's components, the mmengine "
            "parts of a training run, torch.nn / torch.optim classes, or classes of packages you trust on the command "
            "line (--cfg-options trusted_type_prefixes=\"['mypkg']\") or in a .py config")


@pytest.fixture(scope="module")
def digits_yaml(tmp_path_factory) -> dict:
    path = tmp_path_factory.mktemp("dump") / "digits.yaml"
    load_config(DIGITS).dump(str(path))
    return yaml.safe_load(path.read_text())


@pytest.mark.parametrize("place", list(PLACES))
@pytest.mark.parametrize("bad", BAD)
def test_yaml_config_with_a_foreign_type_is_refused_on_load(tmp_path, digits_yaml, bad, place):
    marker = tmp_path / "pwned"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(plant(yaml.safe_load(yaml.safe_dump(digits_yaml)), place, bad, marker)))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value) == refused(bad, PLACES[place])
    assert not marker.exists()


@pytest.mark.parametrize("bad", BAD)
def test_py_config_and_overrides_are_refused_too(tmp_path, bad):
    marker = tmp_path / "pwned"
    path = tmp_path / "bad.py"
    path.write_text(f"custom_hooks = [dict(type={bad!r}, command='touch {marker}')]\n")
    with pytest.raises(ConfigError, match=r"type '.*' at custom_hooks\[0\] is not allowed"):
        load_config(path)
    with pytest.raises(ConfigError) as err:  # --cfg-options custom_hooks.evil.type=os.system
        load_config(DIGITS, {"custom_hooks.evil": dict(type=bad, command=f"touch {marker}")})
    assert str(err.value) == refused(bad, "custom_hooks[4]")
    cfg = load_config(DIGITS)
    cfg.model.backbone.mixer = bad  # set after loading (as tools/train.py's arguments are): check_config refuses
    with pytest.raises(ConfigError) as err:
        check_config(cfg)
    assert str(err.value) == refused(bad, "model.backbone.mixer")
    assert not marker.exists()


@pytest.mark.parametrize("bad", BAD + ["torch.hub.load", "torch.nnx.Linear", "mmengine.utils.misc.import_module",
                                       "visionmix.config.import_modules_from_strings"])
def test_builders_refuse_foreign_paths_themselves(bad):
    # a trusted package's module attribute that is a foreign function (or no class) is refused as well
    with pytest.raises(UntrustedTypeError, match=f"type '{bad}' is not allowed"):
        resolve_type(MIXERS, bad)
    with pytest.raises(UntrustedTypeError):
        build_model(dict(type=bad))


def test_importing_is_what_is_refused(tmp_path, monkeypatch):
    """An untrusted module is never imported; trusted_type_prefixes lets it in."""
    marker = tmp_path / "imported"
    (tmp_path / "vm_probe_plugin.py").write_text(
        f"open({str(marker)!r}, 'w').close()\nfrom mmengine.hooks import Hook\n\n\nclass ProbeHook(Hook):\n"
        "    def __init__(self, level=1):\n        self.level = level\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "vm_probe_plugin", raising=False)
    options = {"custom_hooks.probe": dict(type="vm_probe_plugin.ProbeHook", level=2)}
    with pytest.raises(ConfigError, match="packages you trust on the command line"):
        load_config(DIGITS, options)
    assert not marker.exists()
    cfg = load_config(DIGITS, {**options, "trusted_type_prefixes": ["vm_probe_plugin."]})
    check_config(cfg)
    assert marker.exists() and "vm_probe_plugin" in sys.modules
    with pytest.raises(ConfigError, match=r"custom_hooks\[4\] \(ProbeHook\) has no argument 'levl'"):
        check_config(load_config(DIGITS, {**options, "custom_hooks.probe.levl": 3}))
    sys.modules.pop("vm_probe_plugin")


def test_custom_imports_modules_are_trusted(tmp_path, monkeypatch):
    (tmp_path / "vm_probe_mixers.py").write_text(
        "import torch.nn as nn\n\n\nclass Identity(nn.Module):\n    def __init__(self, dim, num_heads=1):\n"
        "        super().__init__()\n\n    def forward(self, x):\n        return x\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    options = {"model.backbone.mixer": "vm_probe_mixers.Identity"}
    with pytest.raises(ConfigError, match="is not allowed"):
        load_config(DIGITS, options)
    check_config(load_config(DIGITS, {**options, "custom_imports": dict(imports=["vm_probe_mixers"])}))
    assert resolve_type(MIXERS, "vm_probe_mixers.Identity").__name__ == "Identity"
    sys.modules.pop("vm_probe_mixers", None)


ALLOWED = [
    {"optim_wrapper.optimizer.type": "torch.optim.AdamW"},
    {"custom_hooks.ema.type": "mmengine.hooks.EMAHook"},
    {"custom_hooks.ema.type": "EMAHook"},
    {"model.backbone.mixer": "visionmix.mixers.attention.Attention"},
    {"model.backbone.mixer": dict(_delete_=True, type="attention", qkv_bias=False)},
    {"model.backbone.mixer": "attention"},
    {"train_dataloader.collate_fn.type": "mmengine.dataset.utils.default_collate"},  # a registered function
]


@pytest.mark.parametrize("options", ALLOWED, ids=lambda o: str(next(iter(o.values()))))
def test_registered_names_and_trusted_classes_pass(options):
    check_config(load_config(DIGITS, options))


def test_yaml_dump_with_dotted_paths_loads_and_checks(tmp_path, digits_yaml):
    path = tmp_path / "digits.yaml"
    path.write_text(yaml.safe_dump(digits_yaml))
    cfg = load_config(path)
    check_config(cfg)
    assert isinstance(cfg.model.type, str) and cfg.model.type.endswith("DiffusionModel")  # still a string
    assert resolve_type(MIXERS, "attention") is Attention is resolve_type(MIXERS, "visionmix.mixers.Attention")
    assert resolve_type(MODELS, "DiffusionModel").__name__ == "DiffusionModel"


def test_scopes_are_checked_like_types():
    # mmengine imports "<scope>.registry" for a scope it does not know: an import the config would choose
    with pytest.raises(ConfigError, match=r"^scope 'os' at default_scope is not allowed"):
        load_config(DIGITS, {"default_scope": "os"})
    with pytest.raises(ConfigError, match=r"^scope 'evil' at custom_hooks\[0\]._scope_ is not allowed"):
        load_config(DIGITS, {"custom_hooks.ema._scope_": "evil"})
    check_config(load_config(DIGITS, {"default_scope": "mmengine"}))


def test_a_yaml_config_cannot_widen_trust_but_a_py_config_or_the_command_line_can(tmp_path, digits_yaml):
    marker = tmp_path / "pwned"
    popen = {"type": "subprocess.Popen", "args": ["touch", str(marker)]}
    for key, value in (("trusted_type_prefixes", ["subprocess"]), ("custom_imports", {"imports": ["subprocess"]})):
        path = tmp_path / f"{key}.yaml"
        path.write_text(yaml.safe_dump({**digits_yaml, key: value, "model": popen}))
        with pytest.raises(ConfigError, match=f"{key}.yaml: {key} in a YAML config: a data file cannot widen"):
            load_config(path)
        assert "subprocess" not in allowlist.user_prefixes() and not marker.exists()
    plain = tmp_path / "plain.yaml"
    plain.write_text(yaml.safe_dump({**digits_yaml, "model": popen}))
    with pytest.raises(ConfigError, match="type 'subprocess.Popen' at model is not allowed"):
        load_config(plain)
    # the person at the command line may trust a package; so may a .py config, which is code they run
    assert load_config(plain, {"trusted_type_prefixes": ["subprocess"]}).model.type == "subprocess.Popen"
    monkey = tmp_path / "trusting.py"
    monkey.write_text("trusted_type_prefixes = ['subprocess']\nmodel = dict(type='subprocess.Popen', args=['true'])\n")
    assert load_config(monkey).model.type == "subprocess.Popen"
    assert not marker.exists()  # checking a type never calls it


def test_a_python_syntax_error_names_the_file_and_line(tmp_path):
    path = tmp_path / "broken.py"
    path.write_text("model = dict(\n    depth=3,,\n)\n")
    with pytest.raises(ConfigError, match=r"broken\.py, line 2: Python syntax error in the config"):
        load_config(path)
