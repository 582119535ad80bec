"""``avkit weights``: the pretrained weights each model can use, where they must be, and whether a file fits.

``list`` needs no network: torchvision checkpoints are looked up in the torch hub cache, Hugging
Face ones in the Hugging Face cache (``avkit.models.weights``). ``check`` reads a file without
running pickled code and compares its tensors with the model's (``engine.checkpoint.compare_state_dict``).
"""
from __future__ import annotations

import argparse
import json
from typing import Any

from avkit.errors import AvkitError

REQUIRES = ("torch", "torchvision")  # loaded (or reported in one line) before the command runs

EPILOG = """examples:
  avkit weights list                          every checkpoint, its file in the torch hub / HF cache, present or not
  avkit weights list --json
  avkit weights check r2plus1d_18-91a641e6.pth --model r2plus1d_18
  avkit weights check resnet50-11ad3fa6.pth --model single_frame --option backbone=resnet50
  avkit weights check videomae-base/ --model hf_videomae --json   (a folder: its config.json sets the size)

Without network, put a torchvision checkpoint at the path 'list' shows (the file name of its URL in
torch.hub.get_dir()/checkpoints, i.e. $TORCH_HOME/hub/checkpoints) and pass weights=NAME; a Hugging
Face model is a folder (config.json, model.safetensors, preprocessor_config.json) passed as
pretrained=FOLDER, or its id when the Hugging Face cache holds it. 'check' exits 0 when every tensor
of the model gets a value from the file, 2 otherwise (missing or wrongly shaped tensors).
"""


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("weights", help="pretrained weights: list them (present locally?), check a file",
                              description="List the pretrained weights avkit's models can use (torchvision "
                                          "enums, Hugging Face ids), where each must be on disk and whether it "
                                          "is there; check that a weights file fits a model.",
                              epilog=EPILOG)
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    lst = sub.add_parser("list", help="every pretrained checkpoint, its expected file and whether it is present",
                         epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    lst.add_argument("--json", action="store_true", help="print JSON instead of a table")
    chk = sub.add_parser("check", help="load a weights file and report missing / unexpected / mis-shaped tensors",
                         epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    chk.add_argument("file", help="weights: .safetensors, .pth/.pt/.bin (tensors only), a Hugging Face folder "
                                  "or an avkit run directory")
    chk.add_argument("--model", required=True, help="avkit model name (see 'avkit models')")
    chk.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                     help="builder option (YAML value), repeatable: e.g. backbone=resnet50, num_frames=16")
    chk.add_argument("--json", action="store_true", help="print JSON instead of text")
    for q in (lst, chk):
        q.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show full tracebacks on errors")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    return _list(args) if args.action == "list" else _check(args)


# ---------------------------------------------------------------------------------------------
# list


def _list(args: argparse.Namespace) -> int:
    from pathlib import Path

    import torch

    from avkit.models.weights import backbone_models, catalog, hf_cache_dir

    rows = catalog()
    hub = f"{torch.hub.get_dir()}/checkpoints"
    if args.json:
        print(json.dumps({"torch_hub_checkpoints": hub, "huggingface_cache": str(hf_cache_dir()), "weights": rows},
                         indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:  # piped: rich would assume 80 columns and fold every path
        console = Console(width=200)
    table = Table(title="pretrained weights (present: on this machine, nothing to download)", title_justify="left")
    for col in ("family", "pass", "present", "file (torch hub) / folder (Hugging Face cache)"):
        table.add_column(col)
    for r in rows:
        use = r["option"] if r["family"] == "image_backbone" else f"{r['models'][0]}: {r['option']}"
        default = " (DEFAULT)" if r["weights"].endswith("(DEFAULT)") else ""
        table.add_row(r["family"], use + default, "[green]yes[/green]" if r["present"] else "no", Path(r["path"]).name)
    console.print(table)
    present = sum(r["present"] for r in rows)
    console.print(f"{present} of {len(rows)} present. image_backbone weights: for {', '.join(backbone_models())}.\n"
                  f"torch hub files go in {hub} ($TORCH_HOME/hub/checkpoints).\nHugging Face: the cache is "
                  f"{hf_cache_dir()}; or pass pretrained=FOLDER holding config.json, model.safetensors, "
                  "preprocessor_config.json.", highlight=False)
    return 0


# ---------------------------------------------------------------------------------------------
# check


def _options(items: list[str]) -> dict[str, Any]:
    import yaml

    options: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise AvkitError(f"--option {item!r} is not KEY=VALUE (e.g. backbone=resnet50)")
        options[key.strip()] = yaml.safe_load(raw)
    return options


def _build(name: str, options: dict[str, Any], file: Any) -> Any:
    """The model to compare against: no head (a checkpoint's classifier then shows as unexpected),
    a Hugging Face folder's ``config.json`` as the config when the builder takes one."""
    import inspect
    from pathlib import Path

    from avkit.models import create_model, model_entry

    builder = model_entry(name).builder
    config = Path(file) / "config.json"
    if "config" in inspect.signature(builder).parameters and config.is_file() and "config" not in options:
        options = {**options, "config": json.loads(config.read_text())}
    try:
        return create_model(name, **options)
    except TypeError as err:
        raise AvkitError(f"{name}: bad --option ({err})") from None


def _hf_fit(name: str, options: dict[str, Any], folder: str) -> Any:
    """How a Hugging Face folder fits ``name``, from transformers' own loading (it renames some keys,
    e.g. VideoMAE's q_bias, so a plain key comparison would be wrong)."""
    from avkit.engine.checkpoint import WeightsFit
    from avkit.models import create_model
    from avkit.models.weights import collect_loads

    with collect_loads() as loads:
        model: Any = create_model(name, pretrained=folder, **options)
    loaded = loads[0]
    inner = len(model.state_dict()) - (len(model.head.state_dict()) if model.head is not None else 0)
    return WeightsFit(loaded.used, loaded.total, inner, loaded.missing, loaded.unexpected, loaded.mismatched)


def _check(args: argparse.Namespace) -> int:
    import inspect
    from pathlib import Path

    from avkit.engine.checkpoint import compare_state_dict, load_weights
    from avkit.models import model_entry

    options = _options(args.option)
    if (Path(args.file) / "config.json").is_file() and "pretrained" in inspect.signature(
            model_entry(args.model).builder).parameters:
        fit = _hf_fit(args.model, options, args.file)
    else:
        fit = compare_state_dict(_build(args.model, options, args.file), load_weights(args.file))
    if args.json:
        print(json.dumps({"file": args.file, "model": args.model, "fits": fit.fits, "matched": fit.matched,
                          "file_tensors": fit.total, "model_tensors": fit.model_total, "missing": fit.missing,
                          "unexpected": fit.unexpected,
                          "mismatched": [{"key": k, "file_shape": a, "model_shape": b} for k, a, b in fit.mismatched]},
                         indent=2))
        return 0 if fit.fits else 2

    def some(keys: list[str]) -> str:
        return ", ".join(keys[:6]) + (f", ... ({len(keys) - 6} more)" if len(keys) > 6 else "")

    print(f"{args.file} against {args.model} (no head): {fit.matched}/{fit.model_total} model tensors matched, "
          f"file has {fit.total}")
    print(f"  missing (model tensors the file lacks): {len(fit.missing)}" + (f": {some(fit.missing)}" if fit.missing else ""))
    print(f"  unexpected (file tensors the model lacks, e.g. its classifier): {len(fit.unexpected)}"
          + (f": {some(fit.unexpected)}" if fit.unexpected else ""))
    print(f"  other shape: {len(fit.mismatched)}"
          + (": " + some([f"{k} {a} vs {b}" for k, a, b in fit.mismatched]) if fit.mismatched else ""))
    if not fit.fits:
        raise AvkitError(f"{args.file}: does not fit {args.model} ({fit.summary()})")
    print(f"fits: every tensor of {args.model} gets a value from {args.file}")
    return 0
