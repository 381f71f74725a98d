"""The model zoo table (visionmix/zoo/model_zoo.yml), its rendered markdown and tools/zoo.py's reproduce steps.

Oracles: tools/flops.py's measure for parameters and GMACs, the Runner's own EMA model for the exported weights,
tools/eval_digits.py's evaluate for the scores, hashlib for the pinned hashes, the yml text itself for rewrites."""
from __future__ import annotations

import hashlib
import re

import pytest
import torch
import yaml

import visionmix
from tests.tools.helpers import ROOT, load_tool, tiny_digits_config, write_config
from visionmix.cli import UsageError
from visionmix.config import load_config
from visionmix.hub import load_model
from visionmix.registry import as_config

zoo = load_tool("zoo")
flops = load_tool("flops")
ROWS = zoo.load_rows()
DIGITS = {name: row for name, row in ROWS.items() if row.get("converter") is None}
# Until `visionmix zoo reproduce all` has run, a digits row may say `status: untrained`; drop this allowance
# once the rows are filled, so that an unfilled row fails.
ALLOW_UNTRAINED = False
HEX64 = re.compile(r"[0-9a-f]{64}")


def test_markdown_is_rendered_from_the_current_yml():
    assert (ROOT / "model_zoo.md").read_text() == zoo.render(ROWS), "model_zoo.md is stale: visionmix zoo render"


@pytest.mark.parametrize("name", list(ROWS))
def test_row_has_the_schema_keys_and_a_known_converter(name):
    row = ROWS[name]
    untrained = row.get("status") == zoo.UNTRAINED
    assert set(zoo.REQUIRED) - {"quality"} <= set(row) and (untrained or "quality" in row), sorted(row)
    assert row["converter"] in zoo.CONVERTERS and row["scaffold"] in ("isotropic", "unet")
    assert row["sha256"] is None or HEX64.fullmatch(row["sha256"])
    assert (ROOT / row["config"]).is_file(), f"{row['config']} does not exist"
    if row["converter"] is not None:  # published: a URL, unpinned, a published number with its source
        assert row["weights"].startswith("https://") and row.get("status") is None
        assert {"metric", "value", "source"} <= set(row["quality"])
        assert row["quality"]["value"] is not None or row["quality"].get("note")


@pytest.mark.parametrize("name", list(ROWS))
def test_params_gmacs_and_mixer_are_what_the_config_builds(name):
    row = ROWS[name]
    params, _, gmacs, _ = flops.measure(str(ROOT / row["config"]), row.get("cfg_options"))
    assert (row["params"], row["gmacs"]) == (params, round(gmacs, 6))
    mixer = as_config(load_config(str(ROOT / row["config"]), row.get("cfg_options")).model.backbone.mixer)["type"]
    assert visionmix.MIXERS.get(row["mixer"]) is (mixer if isinstance(mixer, type) else visionmix.MIXERS.get(mixer))


@pytest.mark.parametrize("mixer", visionmix.list_mixers())
def test_every_registered_mixer_has_a_digits_row(mixer):
    name = "drwkv_digits" if mixer == "bi_rwkv" else f"{mixer}_digits"
    assert name in DIGITS, f"no zoo row {name} for mixer {mixer}"
    row = DIGITS[name]
    assert (row["mixer"], row["config"]) == (mixer, "configs/quickstart/drwkv_digits8.py")
    swap = {} if mixer == "bi_rwkv" else {"model.backbone.mixer": mixer}  # the scaffold's own mixer needs no swap
    assert row.get("cfg_options", {}) == swap
    assert row["weights"] == f"digits/{name}.safetensors"
    if ALLOW_UNTRAINED and row.get("status") == zoo.UNTRAINED:
        return
    assert "status" not in row, f"{name} is not trained yet: visionmix zoo reproduce {name}"
    weights = zoo.ZOO_DIR / row["weights"]
    assert weights.stat().st_size <= zoo.MAX_BYTES
    assert row["sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert (zoo.ZOO_DIR / row["grid"]).is_file() and row["grid"] == f"digits/{name}.png"
    assert row["quality"]["source"] == "measured" and row["quality"]["samples"] > 0
    assert all(0 <= row["quality"][k] <= 1 for k in ("agreement", "agreement_cfg3"))
    assert row["train"]["iters"] == load_config(str(ROOT / row["config"])).train_cfg.max_iters


@pytest.mark.parametrize("name", [next(iter(ROWS)), "drwkv_digits", list(ROWS)[-1], "new_digits"])
def test_rewriting_a_row_keeps_every_other_row_byte_identical(name):
    text = zoo.YML.read_text()
    filled = dict(ROWS.get(name, DIGITS["drwkv_digits"]), sha256="ab" * 32, grid=f"digits/{name}.png",
                  quality=dict(agreement=0.93, agreement_cfg3=0.997, frechet=0.69, source="measured"),
                  train=dict(iters=1000, minutes=2.4))
    filled.pop("status", None)
    new = zoo.replace_row(text, name, filled)
    assert yaml.safe_load(new)["models"] == {**ROWS, name: filled}
    old_spans, new_spans = zoo.row_spans(text), zoo.row_spans(new)
    old_lines, new_lines = text.splitlines(keepends=True), new.splitlines(keepends=True)
    for other, (a, b) in old_spans.items():
        if other != name:
            c, d = new_spans[other]
            assert new_lines[c:d] == old_lines[a:b]
    if name in old_spans:  # and the comments between rows, header included, stay where they were
        (a, b), (c, d) = old_spans[name], new_spans[name]
        assert (new_lines[:c], new_lines[d:]) == (old_lines[:a], old_lines[b:])
    else:
        assert new.startswith(text)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A 2-iteration tiny DRWKV trained in <tmp>/work_dirs/zoo/tiny_digits with its config in <tmp>/configs/, and
    the Runner's own EMA and raw weights at the end (the oracle for what the checkpoint should hold)."""
    root = tmp_path_factory.mktemp("zoo")
    train = load_tool("train")
    cfg = tiny_digits_config(root / "work_dirs/zoo/tiny_digits", max_iters=2, checkpoint_interval=2)
    config = write_config(cfg.copy(), root / "configs/tiny_digits.py")
    args = train.parse_args([str(config), "--work-dir", cfg.work_dir])
    runner = train.build_runner(train.apply_args(cfg, args), args)
    runner.train()
    ema_hook = next(h for h in runner._hooks if type(h).__name__ == "EMAHook")
    ema = {k: v.detach().clone() for k, v in ema_hook.ema_model.module.state_dict().items()}
    raw = {k: v.detach().clone() for k, v in runner.model.state_dict().items()}
    return root, config, ema, raw


def test_export_writes_the_ema_weights_as_fp16_safetensors(tiny_run, tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file

    root, config, ema, raw = tiny_run
    out = tmp_path / "tiny.safetensors"
    metadata = dict(config="configs/tiny_digits.py", mixer="bi_rwkv", iterations="2", visionmix_version="0.1.0")
    meta = zoo.export_weights(zoo.last_checkpoint(root / "work_dirs/zoo/tiny_digits"), out, metadata)
    assert meta["iter"] == 2
    loaded = load_file(str(out))
    assert set(loaded) == set(ema)
    assert all(v.dtype == torch.float16 for v in loaded.values())
    # within fp16 rounding of the EMA (half a unit in the last place, relative; subnormals absolute) ...
    close = {k: torch.allclose(loaded[k].float(), ema[k].float(), rtol=2.0**-11, atol=3e-8) for k in ema}
    assert all(close.values()), [k for k, ok in close.items() if not ok][:3]
    # ... and not of the raw weights, which the checkpoint keeps in ema_state_dict after mmengine's swap
    assert not all(torch.allclose(loaded[k].float(), raw[k].float(), rtol=2.0**-11, atol=3e-8) for k in raw)
    with safe_open(str(out), "pt") as f:
        assert f.metadata() == metadata
    model = zoo.load_exported(visionmix.build_model(load_config(str(config)).model), out)
    assert all(torch.equal(v, loaded[k].float()) for k, v in model.state_dict().items() if k in loaded)


def test_export_refuses_a_file_over_the_size_limit_and_leaves_nothing(tiny_run, tmp_path):
    root, *_ = tiny_run
    with pytest.raises(ValueError, match="over the zoo's 1,000"):
        zoo.export_weights(zoo.last_checkpoint(root / "work_dirs/zoo/tiny_digits"), tmp_path / "big.safetensors",
                           {}, max_bytes=1000)
    assert list(tmp_path.iterdir()) == []


def test_scores_are_eval_digits_scores(tiny_run):
    root, config, *_ = tiny_run
    checkpoint = str(zoo.last_checkpoint(root / "work_dirs/zoo/tiny_digits"))
    expected = load_tool("eval_digits").evaluate(str(config), checkpoint, per_class=2)
    model, _ = load_model(checkpoint, str(config))
    quality, grid, labels = zoo.evaluate(model, per_class=2)
    assert [quality["agreement"], quality["agreement_cfg3"]] == [round(r["agreement"], 4) for r in expected]
    assert [quality["frechet"], quality["frechet_cfg3"]] == [round(r["frechet"], 3) for r in expected]
    assert grid.shape == (20, 1, 8, 8) and labels.tolist() == [c for c in range(10) for _ in range(2)]


def test_reproduce_skip_train_fills_the_row_and_renders(tiny_run, monkeypatch, capsys):
    root, *_ = tiny_run
    zoo_dir = root / "visionmix/zoo"
    zoo_dir.mkdir(parents=True, exist_ok=True)
    other = dict(ROWS["dit_xl2_in256"])
    untrained = dict(DIGITS["drwkv_digits"], config="configs/tiny_digits.py", weights="digits/tiny_digits.safetensors")
    text = "# header comment\nmodels:\n" + zoo.dump_row("dit_xl2_in256", other) + zoo.dump_row("tiny_digits", untrained)
    (zoo_dir / "model_zoo.yml").write_text(text)
    paths = dict(ROOT=root, ZOO_DIR=zoo_dir, YML=zoo_dir / "model_zoo.yml", MARKDOWN=root / "zoo.md")
    for attr, value in paths.items():
        monkeypatch.setattr(zoo, attr, value)
    assert zoo.main(["reproduce", "tiny_digits", "--skip-train", "--per-class", "2"]) == 0
    new = (zoo_dir / "model_zoo.yml").read_text()
    assert new.startswith("# header comment\nmodels:\n" + zoo.dump_row("dit_xl2_in256", other))
    row = yaml.safe_load(new)["models"]["tiny_digits"]
    assert "status" not in row
    weights = zoo_dir / "digits/tiny_digits.safetensors"
    assert row["sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert (zoo_dir / row["grid"]).is_file() and row["quality"]["samples"] == 20
    assert row["train"]["iters"] == 2 and row["train"]["minutes"] >= 0
    assert (root / "zoo.md").read_text() == zoo.render(zoo.load_rows(zoo_dir / "model_zoo.yml"))
    assert zoo.main(["render", "--check"]) == 0
    (root / "zoo.md").write_text("stale")
    assert zoo.main(["render", "--check"]) == 1 and "stale" in capsys.readouterr().err


def test_reproduce_refuses_published_and_unknown_names():
    with pytest.raises(UsageError, match="published checkpoint"):
        zoo.resolve_names(["dit_xl2_in256"], ROWS)
    with pytest.raises(UsageError, match="did you mean drwkv_digits"):
        zoo.resolve_names(["drwkv_digit"], ROWS)
    assert zoo.resolve_names(["all"], ROWS) == list(DIGITS)
