"""`python -m dstlib train`: train (or load) one run and print its id, folder and accuracy.

On several GPUs or nodes, under torchrun (`torchrun --nproc_per_node=4 -m dstlib train ... --device cuda`):
one process per GPU trains the one run with DistributedDataParallel (gloo with `--device cpu`), rank 0 writes
it to the store under the id a single process would use, and prints (`dstlib.distributed`).
"""
from __future__ import annotations

import argparse
import dataclasses
import json

from dstlib.config import HELP as FIELD_HELP
from dstlib.config import RunSpec

HELP = "train or load one run; every spec field has a flag"


def _none_or(cast):
    def parse(text: str):
        return None if text.lower() == "none" else cast(text)
    parse.__name__ = cast.__name__
    return parse


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


_CAST = {"int": int, "float": float, "str": str, "bool": _bool}


def add_spec_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per RunSpec field, typed from the dataclass."""
    for f in dataclasses.fields(RunSpec):
        typ = str(f.type)
        flag = "--" + f.name.replace("_", "-")
        kwargs = dict(dest=f.name, default=f.default, help=FIELD_HELP[f.name])
        if typ.startswith("tuple["):
            kwargs.update(nargs="*", type=_CAST[typ[6:].split(",")[0]], metavar="X")
        else:
            base = typ.replace(" | None", "")
            kwargs.update(type=_none_or(_CAST[base]) if "None" in typ else _CAST[base], metavar=base.upper())
        parser.add_argument(flag, **kwargs)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_spec_arguments(parser)
    parser.add_argument("--store", default=None, help="run store folder (default: $DSTLIB_STORE, else runs/)")
    parser.add_argument("--device", default="cpu", help="torch device: cpu, cuda, cuda:1, ...")
    parser.add_argument("--data-root", default=None,
                        help="dataset folder (default: $DSTLIB_DATA/<dataset>; Fashion-MNIST: $DSTLIB_DATA, else "
                             "/usr/share/datasets/fashion-mnist)")
    parser.add_argument("--no-train", action="store_true", help="only load; fail if the run is not stored")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON line")
    parser.add_argument("--workers", type=int, default=None,
                        help="decoding processes for image-folder datasets (default: up to 8 per process)")
    parser.add_argument("--gpu-decode", choices=("auto", "on", "off"), default="auto",
                        help="decode JPEGs on the GPU (auto: where torchvision can, for augmentation none or rrc_flip)")
    parser.add_argument("--checkpoint-minutes", type=float, default=30.0,
                        help="a partial run saves its state at every epoch's end and within an epoch this often")


def spec_from_args(args: argparse.Namespace) -> RunSpec:
    return RunSpec(**{f.name: getattr(args, f.name) for f in dataclasses.fields(RunSpec)})


def run(args: argparse.Namespace) -> int:
    """Train or load the run; a stored run is reported as loaded only after every file passed its checksum.
    The accuracy printed is history's last test_acc, on the first `test_images` test images (all without
    --monitor-size). Progress bars only on a terminal (a log file would get one line per update)."""
    import sys

    from dstlib import distributed, models
    from dstlib.store import Store

    spec = spec_from_args(args)
    models.check_name(spec.model)  # before any compute
    for flag, value in (("--workers", args.workers), ("--checkpoint-minutes", args.checkpoint_minutes)):
        if value is not None and value < 0:
            raise ValueError(f"{flag}={value} is invalid; allowed: a number >= 0")
    store = Store(args.store, checkpoint_seconds=60 * args.checkpoint_minutes)
    device = distributed.init(args.device)
    try:
        result = store.run(spec, train=not args.no_train, device=device, data_root=args.data_root,
                           progress=sys.stderr.isatty(), workers=args.workers,
                           gpu_decode={"auto": None, "on": True, "off": False}[args.gpu_decode])
        if not distributed.is_main():
            return 0
        store.verify(spec)
        processes = distributed.world()
    finally:
        distributed.close()
    last = result.history[-1]
    out = {"id": result.id, "folder": str(result.path), "trained": result.trained_now, "test_acc": last["test_acc"],
           "test_images": last.get("test_images"), "density": last.get("density", 1.0), "epochs": len(result.history),
           "processes": processes}
    if args.json:
        print(json.dumps(out))
    else:
        on = f"first {out['test_images']:,} test images" if spec.monitor_size else "all test images"
        print(f"run {out['id']} ({'trained' if out['trained'] else 'loaded'})  folder {out['folder']}  "
              f"test accuracy {out['test_acc']:.4f} ({on})  "
              f"density {out['density']:.3f}  epochs {out['epochs']}")
    return 0
