"""Convert an official checkpoint (DiT, SiT, DiCo, U-ViT, Diffusion-RWKV) to a visionmix state dict.

    visionmix convert dit DiT-XL-2-256x256.pt work_dirs/zoo/dit_xl2_in256.pt --config configs/dit/dit_xl2_in256.py
    visionmix convert drwkv drwkv_h2_256.pt drwkv_h2_in256.safetensors --config configs/drwkv/drwkv_h2_in256.py

IN is read without running pickled code (tensors, plain containers and argparse.Namespace only: see
visionmix/converters/loading.py). OUT is ``.safetensors`` or a plain state dict (``.pt`` / ``.pth``, the form
``visionmix sample --checkpoint`` reads), written under a temporary name and renamed, so it appears whole or not
at all. ``--config`` builds that config's model (on the meta device: shapes only) and loads the result with
strict=True before anything is written. Sources and the configs their releases load into:
visionmix.converters.SOURCES. Exit codes: 0 done, 1 runtime error, 2 bad arguments.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

from visionmix.cli import ArgumentParser, CfgOptionsAction, UsageError, run_tool  # light: no torch

FORMATS = (".safetensors", ".pt", ".pth")
SHOWN_MISMATCHES = 4


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="dit, sit, dico, uvit or drwkv")
    parser.add_argument("input", help="the official checkpoint file")
    parser.add_argument("output", help="where to write the converted state dict (.safetensors, .pt or .pth)")
    parser.add_argument("--config", help="check that the result loads (strict) into this config's model")
    parser.add_argument("--cfg-options", nargs="+", action=CfgOptionsAction, metavar="KEY=VALUE",
                        help="overrides for --config")
    parser.add_argument("--trust-checkpoint", action="store_true",
                        help="fully unpickle IN, which runs any code inside it: only for files you made (otherwise "
                             "only tensors, plain containers and argparse.Namespace are read)")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    args = parser.parse_args(argv)
    if Path(args.output).suffix not in FORMATS:
        raise UsageError(f"output {args.output}: choose a file name ending in {', '.join(FORMATS)}")
    if args.cfg_options and not args.config:
        raise UsageError("--cfg-options changes the --config model: pass --config too")
    if Path(args.output).expanduser().resolve() == Path(args.input).expanduser().resolve():
        raise UsageError("the output would overwrite the input checkpoint: choose another output file")
    return args


def check_loads(state: dict, config: str, cfg_options: Optional[dict]) -> None:
    """Build ``config``'s model on the meta device and load ``state`` with strict=True; a mismatch is a short
    error naming a few keys and shapes."""
    from visionmix.config import load_config
    from visionmix.flops import meta_model

    model = meta_model(load_config(config, cfg_options).model)
    wanted = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    saved = {k: tuple(v.shape) for k, v in state.items()}
    problems = [f"  {k}: converted {saved[k]} vs model {wanted[k]}"
                for k in wanted if k in saved and saved[k] != wanted[k]]
    problems += [f"  {k}: not in the converted checkpoint" for k in wanted if k not in saved]
    problems += [f"  {k}: not in the model" for k in saved if k not in wanted]
    if problems:
        raise ValueError(f"the converted checkpoint does not load into {config} ({len(problems)} mismatches), e.g.\n"
                         + "\n".join(problems[:SHOWN_MISMATCHES])
                         + "\npass the config of this checkpoint's model size (or --cfg-options to adjust it)")
    model.load_state_dict(state, strict=True, assign=True)


def write_atomic(state: dict, output: Path, metadata: dict[str, str]) -> None:
    """``state`` to ``output`` (safetensors or torch.save by suffix) via a temporary file and os.replace."""
    import torch

    from visionmix.atomic_write import atomic_path

    with atomic_path(output) as temp:
        if output.suffix == ".safetensors":
            from safetensors.torch import save_file

            save_file({k: v.contiguous() for k, v in state.items()}, str(temp), metadata=metadata)
        else:
            torch.save(state, temp)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    from visionmix.converters import SOURCES, convert, load_official

    if args.source not in SOURCES:
        raise UsageError(f"unknown source {args.source!r}; known sources: {', '.join(SOURCES)}")
    checkpoint: Any = load_official(args.input, trusted=args.trust_checkpoint)
    state = convert(args.source, checkpoint)
    if args.config:
        check_loads(state, args.config, args.cfg_options)
    output = Path(args.output).expanduser()
    write_atomic(state, output, {"source": args.source, "input": Path(args.input).name})
    params = sum(v.numel() for v in state.values())
    checked = f"; loads into {args.config} (strict)" if args.config else ""
    print(f"wrote {output} ({len(state)} tensors, {params:,} parameters) from the {SOURCES[args.source].title} "
          f"checkpoint {args.input}{checked}")
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main))
