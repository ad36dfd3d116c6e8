"""Content-addressed runs: one folder per spec hash, trained once, loaded ever after.

Layout of `<root>/<id>/` (id: the first 16 hex digits of `spec.hash()`):

    spec.json              the full spec (its canonical form hashes to the id)
    weights.safetensors    final model state (parameters and buffers)
    masks.safetensors      final masks (uint8 0/1; empty for dense)
    history.json           one row per epoch
    snapshots/epoch_<e>.safetensors   weights ("model.*") and masks ("mask.*") after epoch e
    snapshots/added.json   (only after snapshots were added to the finished run) the epochs added, and
                           whether the replay that made them ended on the stored weights bit for bit
    checkpoint.safetensors + checkpoint.json   the full training state of a partial run: after the last
                           epoch, or mid-epoch (every `checkpoint_seconds`) with the position in the epoch
    manifest.json          sha256 of every file above; written last: its presence means finished

Snapshots are not part of a run's identity. A finished run asked for snapshots it did not keep (a
section that needs them after another trained the run without) gets them added, not a second copy and
not a refusal: the run is replayed from its seed in `replay/` (checkpointed as a partial run is), the
missing snapshots are written, and the manifest is rewritten to list them; the final weights, masks and
history stay the stored ones. On the CPU the replay is the same computation, so `added.json` records
`"exact": true`; on a GPU (nondeterministic kernels) the added snapshots come from a run of the same spec
and seed whose final weights may differ in the last bits, and `added.json` says so. Planning the
snapshots before the first section trains (`dstlib.book.plan`) avoids the replay's cost.

Every file is written to a temporary name and renamed; nothing is unpickled.
Every load checks the sha256 sums, so a damaged or truncated file raises
`DamagedRunError` instead of being used. A per-run lock file makes a second
process wait for the first instead of training the same run twice.

One run on several processes (`dstlib.distributed`, torchrun): every rank
trains, rank 0 alone takes the lock and writes, and every rank reads the
checkpoint it resumes from (for several nodes the store must be on a shared
file system). The folder is the one a single process uses for the same spec.
Weights are stored from the CPU in float32, whatever device trained them, so
a run trained on GPUs loads on a CPU-only machine.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from filelock import FileLock
from safetensors.torch import load_file, save

from dstlib import distributed, io
from dstlib.config import RunSpec


class DamagedRunError(RuntimeError):
    """A stored file does not match its recorded checksum, or cannot be parsed."""


class MissingRunError(LookupError):
    """The run is not stored and training was not allowed."""


def default_root() -> Path:
    return Path(os.environ.get("DSTLIB_STORE", "runs"))


def _save_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    io.atomic_save_bytes(path, save({k: v.detach().cpu().contiguous() for k, v in tensors.items()}))


def _masks_to_file(masks: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: m.to(torch.uint8) for k, m in masks.items()}


@dataclass
class Run:
    """A finished run: its spec, history, weights and masks, loaded on demand."""

    spec: RunSpec
    path: Path
    history: list[dict] = field(repr=False)
    device: str = "cpu"
    trained_now: bool = False  # True when this call trained (or finished) the run

    @property
    def id(self) -> str:
        return self.path.name

    @property
    def masks(self) -> dict[str, torch.Tensor]:
        return {k: v.bool() for k, v in _load_checked(self.path, "masks.safetensors").items()}

    def model(self) -> torch.nn.Module:
        """The final model in eval mode on `self.device`, masks applied."""
        return self._build(_load_checked(self.path, "weights.safetensors"))

    @property
    def snapshots(self) -> list[int]:
        """Epochs with a snapshot, as the manifest lists them (a replay's unfinished files are not counted)."""
        return _kept_snapshots(_manifest(self.path))

    def snapshot(self, epoch: int) -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
        """(model in eval mode, masks) as they were after `epoch`."""
        if epoch not in self.snapshots:
            raise ValueError(f"epoch={epoch!r} has no snapshot in run {self.id}; kept: {self.snapshots}")
        flat = _load_checked(self.path, f"snapshots/epoch_{epoch}.safetensors")
        weights = {k[len("model."):]: v for k, v in flat.items() if k.startswith("model.")}
        masks = {k[len("mask."):]: v.bool() for k, v in flat.items() if k.startswith("mask.")}
        return self._build(weights), masks

    def _build(self, weights: dict[str, torch.Tensor]) -> torch.nn.Module:
        from dstlib import models

        with torch.random.fork_rng(devices=[]):
            model = models.for_spec(self.spec)
        model.load_state_dict(weights)
        return model.to(self.device).eval()


def _manifest(folder: Path) -> dict[str, str]:
    path = folder / "manifest.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise DamagedRunError(f"{path}: unreadable manifest ({e}); delete {folder} to train the run again") from None


def _kept_snapshots(manifest: dict[str, str]) -> list[int]:
    return sorted(int(name[len("snapshots/epoch_"):-len(".safetensors")]) for name in manifest
                  if name.startswith("snapshots/epoch_") and name.endswith(".safetensors"))


def _load_checked(folder: Path, name: str):
    """Load a stored file after checking its sha256 against the manifest."""
    manifest = _manifest(folder)
    path = folder / name
    if name not in manifest:
        raise DamagedRunError(f"{path}: not listed in manifest.json; delete {folder} to train the run again")
    if not path.is_file() or io.sha256_file(path) != manifest[name]:
        raise DamagedRunError(f"{path}: missing or damaged (sha256 differs from manifest.json); "
                              f"delete {folder} to train the run again")
    if name.endswith(".safetensors"):
        return load_file(path)
    return json.loads(path.read_text())


#: Seconds between mid-epoch checkpoints (an ImageNet epoch takes hours; a CIFAR epoch a minute, so it only
#: ever checkpoints at the epoch's end).
CHECKPOINT_SECONDS = 1800.0


class Store:
    """Runs under `root` (default: $DSTLIB_STORE, else ./runs).

    `checkpoint_seconds`: a partial run saves its state at the end of every epoch and, within an epoch,
    after the first step this long after the last save (0: after every step).
    """

    def __init__(self, root: str | os.PathLike | None = None, checkpoint_seconds: float = CHECKPOINT_SECONDS):
        self.root = Path(root) if root is not None else default_root()
        if self.root.exists() and not self.root.is_dir():
            raise ValueError(f"store={str(self.root)!r} is a file; allowed: a folder (made when missing)")
        if not checkpoint_seconds >= 0:
            raise ValueError(f"checkpoint_seconds={checkpoint_seconds!r} is invalid; allowed: a number >= 0")
        self.checkpoint_seconds = float(checkpoint_seconds)

    def path(self, spec: RunSpec) -> Path:
        return self.root / spec.short_id()

    def is_finished(self, spec: RunSpec) -> bool:
        return (self.path(spec) / "manifest.json").is_file()

    def run(self, spec: RunSpec, *, train: bool = True, device: str = "cpu", progress: bool = True,
            data_root: str | None = None, workers: int | None = None, gpu_decode: bool | None = None) -> Run:
        """Load the finished run of `spec`, or resume or train it (when `train`).

        Under several processes every rank calls this together (module docstring). `workers` and
        `gpu_decode`: how a streamed dataset is decoded (`dstlib.train.Trainer`).
        """
        folder, trained = self.path(spec), False
        if not distributed.broadcast(self.is_finished(spec)):
            if not train:
                raise MissingRunError(f"run {folder.name} ({spec.method}, {spec.model}, seed {spec.seed}) "
                                      f"is not in {self.root} and training is off")
            main = distributed.is_main()
            if main:
                folder.mkdir(parents=True, exist_ok=True)
            with FileLock(str(folder / ".lock")) if main else contextlib.nullcontext():
                # another process may have finished it meanwhile
                if distributed.broadcast(not self.is_finished(spec)):
                    self._train(spec, folder, device, progress, data_root, workers, gpu_decode)
                    trained = True
                distributed.barrier()
        elif train and distributed.broadcast(bool(self.missing_snapshots(spec))):
            main = distributed.is_main()
            with FileLock(str(folder / ".lock")) if main else contextlib.nullcontext():
                missing = distributed.broadcast(self.missing_snapshots(spec))  # another process may have added them
                if missing:
                    self._train(spec.replace(snapshots=tuple(missing)), folder, device, progress, data_root,
                                workers, gpu_decode, replay=True)
                    trained = True
                distributed.barrier()
        run = self.load(spec, device=device)
        run.trained_now = trained
        return run

    def missing_snapshots(self, spec: RunSpec) -> list[int]:
        """Epochs of `spec.snapshots` that the finished run of `spec` does not keep."""
        return sorted(set(spec.snapshots) - set(_kept_snapshots(_manifest(self.path(spec)))))

    def is_running(self, spec: RunSpec) -> bool:
        """True while another process holds the run's lock (training it, or adding the snapshots it lacks)."""
        from filelock import Timeout
        lock = self.path(spec) / ".lock"
        if (self.is_finished(spec) and not self.missing_snapshots(spec)) or not lock.exists():
            return False
        try:
            with FileLock(str(lock), timeout=0):
                return False
        except Timeout:
            return True

    def load(self, spec: RunSpec, device: str = "cpu") -> Run:
        folder = self.path(spec)
        stored = RunSpec.from_dict(_load_checked(folder, "spec.json"))
        if stored.hash() != spec.hash():
            raise DamagedRunError(f"{folder}/spec.json describes another run (hash {stored.hash()[:16]})")
        kept = _kept_snapshots(_manifest(folder))
        missing = sorted(set(spec.snapshots) - set(kept))
        if missing:
            raise ValueError(f"snapshots={list(spec.snapshots)} asks for epochs {missing} that run {folder.name} "
                             f"did not keep (kept: {kept}); allowed: Store.run(spec) with training on, which "
                             f"adds them (replaying the run from its seed)")
        return Run(stored.replace(snapshots=tuple(kept)), folder, _load_checked(folder, "history.json"), device)

    # --- training ----------------------------------------------------------------------------
    def _train(self, spec: RunSpec, folder: Path, device: str, progress: bool, data_root, workers=None,
               gpu_decode=None, replay: bool = False) -> None:
        """Train `spec` into `folder`, resuming its checkpoint; `replay`: the run is finished, train it again
        from its seed in `folder/replay` (checkpoints there) only to add the snapshots `spec.snapshots` names."""
        from dstlib.train import Trainer

        main = distributed.is_main()
        work = folder / "replay" if replay else folder
        if main:
            work.mkdir(parents=True, exist_ok=True)
        trainer = Trainer(spec, device=device, data_root=data_root, workers=workers, gpu_decode=gpu_decode)
        if (work / "checkpoint.json").is_file():
            trainer.load_state_dict(self._load_checkpoint(work))
        last = time.monotonic()

        def mid_epoch(t) -> None:
            nonlocal last
            if main and time.monotonic() - last >= self.checkpoint_seconds:
                self._save_checkpoint(work, t.state_dict())
                last = time.monotonic()

        while not trainer.done:
            trainer.train_epoch(progress=progress, on_step=mid_epoch)
            if main and trainer.epoch in spec.snapshots:
                flat = {f"model.{k}": v for k, v in trainer.model.state_dict().items()}
                flat.update({f"mask.{k}": v for k, v in _masks_to_file(trainer.sparsifier.masks).items()})
                _save_tensors(folder / "snapshots" / f"epoch_{trainer.epoch}.safetensors", flat)
            if main and not trainer.done:
                self._save_checkpoint(work, trainer.state_dict())
                last = time.monotonic()
        if main and replay:
            self._add_snapshots(spec, folder, trainer)
        elif main:
            self._finish(spec, folder, trainer)

    def _add_snapshots(self, spec: RunSpec, folder: Path, trainer) -> None:
        """List the replay's snapshots in the finished run's manifest (the commit point), with added.json."""
        stored = _load_checked(folder, "weights.safetensors")
        final = {k: v.detach().cpu() for k, v in trainer.model.state_dict().items()}
        exact = stored.keys() == final.keys() and all(torch.equal(stored[k], final[k]) for k in stored)
        manifest = _manifest(folder)
        added = sorted(set(spec.snapshots) - set(_kept_snapshots(manifest)))
        previous = _load_checked(folder, "snapshots/added.json") if "snapshots/added.json" in manifest else []
        record = previous + [{"epochs": added, "exact": exact, "device": str(trainer.device)}]
        io.atomic_save_text(folder / "snapshots" / "added.json", json.dumps(record, indent=1))
        manifest.update({f"snapshots/epoch_{e}.safetensors": io.sha256_file(folder / f"snapshots/epoch_{e}.safetensors")
                         for e in added})
        manifest["snapshots/added.json"] = io.sha256_file(folder / "snapshots" / "added.json")
        io.atomic_save_text(folder / "manifest.json", json.dumps(manifest, indent=1))
        shutil.rmtree(folder / "replay", ignore_errors=True)

    def _save_checkpoint(self, folder: Path, state: dict) -> None:
        tensors, skeleton = io.split_tensors(state)
        _save_tensors(folder / "checkpoint.safetensors", tensors)
        # the JSON names the tensor file's checksum, so a pair from two different epochs is caught
        doc = {"sha256": io.sha256_file(folder / "checkpoint.safetensors"), "state": skeleton}
        io.atomic_save_text(folder / "checkpoint.json", json.dumps(doc))

    def _load_checkpoint(self, folder: Path) -> dict:
        try:
            doc = json.loads((folder / "checkpoint.json").read_text())
        except ValueError as e:
            raise DamagedRunError(f"{folder}/checkpoint.json: unreadable ({e}); delete it to restart the run") from None
        path = folder / "checkpoint.safetensors"
        if not path.is_file() or io.sha256_file(path) != doc.get("sha256"):
            raise DamagedRunError(f"{path}: missing or damaged (sha256 differs from checkpoint.json); "
                                  f"delete both checkpoint files to restart the run")
        return io.join_tensors(load_file(path), doc["state"])

    def _finish(self, spec: RunSpec, folder: Path, trainer) -> None:
        io.atomic_save_text(folder / "spec.json", json.dumps(spec.to_dict(), indent=1, sort_keys=True))
        io.atomic_save_text(folder / "history.json", json.dumps(trainer.history, indent=1))
        _save_tensors(folder / "weights.safetensors", trainer.model.state_dict())
        _save_tensors(folder / "masks.safetensors", _masks_to_file(trainer.sparsifier.masks))
        files = ["spec.json", "history.json", "weights.safetensors", "masks.safetensors"]
        files += [f"snapshots/epoch_{e}.safetensors" for e in spec.snapshots]
        manifest = {name: io.sha256_file(folder / name) for name in files}
        io.atomic_save_text(folder / "manifest.json", json.dumps(manifest, indent=1))
        for name in ("checkpoint.safetensors", "checkpoint.json"):
            (folder / name).unlink(missing_ok=True)

    def verify(self, spec: RunSpec) -> None:
        """Check every file of the finished run against its manifest (DamagedRunError naming the first bad one)."""
        folder = self.path(spec)
        for name in _manifest(folder):
            path = folder / name
            if not path.is_file() or io.sha256_file(path) != _manifest(folder)[name]:
                raise DamagedRunError(f"{path}: missing or damaged (sha256 differs from manifest.json); "
                                      f"delete {folder} to train the run again")

    def runs(self) -> list[Run]:
        """Every finished run under the root."""
        out = []
        for folder in sorted(self.root.glob("*/manifest.json")):
            spec = RunSpec.from_dict(_load_checked(folder.parent, "spec.json"))
            spec = spec.replace(snapshots=tuple(_kept_snapshots(_manifest(folder.parent))))
            out.append(Run(spec, folder.parent, _load_checked(folder.parent, "history.json")))
        return out

    def remove(self, spec: RunSpec) -> None:
        shutil.rmtree(self.path(spec), ignore_errors=True)
