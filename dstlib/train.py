"""The training loop: one `Trainer` per run spec, advanced an epoch (or a step) at a time.

Per batch: augment (uint8; clips (N, T, C, H, W) get one crop and flip per
clip), normalise, optional mixup or CutMix, forward,
cross-entropy with label smoothing, backward, optimiser step, then
`sparsifier.step()`, which re-applies the masks and, on its update steps,
changes the topology from the weights and the dense `.grad` of the step just
taken. The learning rate is a pure function of the step (linear warm-up, then
cosine to 0, step decay or constant), so no scheduler state can drift.

Two ways to the images, chosen by the dataset (never by the device, so a
spec means one run):

- in memory (Fashion-MNIST, CIFAR, Tiny-ImageNet): the uint8 set lives on
  the device; shuffling, the augmentation (crop and flip on the device) and
  mixup draw from the trainer's generators;
- streamed (ImageNet, any `FolderImageSet`): `dstlib.data.stream` decodes
  and augments in worker processes (or decodes JPEGs on the GPU,
  `gpu_decode`), in pinned memory, copied without blocking; the order, each
  image's augmentation and each step's mixing are pure functions of (seed,
  epoch, image or step).

Determinism: the model is initialised under `torch.manual_seed(spec.seed)`;
shuffling, augmentation, mixup and the sparsifier draw from their own
generators, seeded from the spec's seed through `config.derive_seed` (never
the init's own stream), and their states (and the global RNG states) are part
of `state_dict()`, as is the position within the epoch. The same spec gives
bitwise-identical weights on the CPU, and a run resumed from any checkpoint,
at an epoch's end or after any step (`train_epoch(on_step=...)`), ends exactly
where an uninterrupted one does.

Several processes (`dstlib.distributed`, e.g. under torchrun): the model is
wrapped in DistributedDataParallel (the sparsifier sees the model inside, so
mask names are those of a single process), `spec.batch_size` is the global
batch, shared by the ranks, and every rank's masks are rank 0's. In memory,
each rank builds, augments and mixes the whole global batch exactly as one
process would and trains on its share (images r, r + world, ...); streamed,
each rank decodes only its share. Accuracies are summed over the ranks. The
last partial batch of an epoch is kept only when every rank gets at least 2
images of it (one process: at least 2).

On CUDA: automatic mixed precision (bfloat16 where supported, else float16
with a gradient scaler). Convolutional models train in channels_last memory
format on every device. Weights stay float32. The CUDA branches (autocast,
scaler, CUDA generator state in checkpoints) have not been run by this
project, which has no GPU; the tests run every other path on the CPU.
"""
from __future__ import annotations

import math
import time
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dstlib import data as datasets
from dstlib import distributed, models, sparsity
from dstlib.config import RunSpec, derive_seed
from dstlib.data import stream


def learning_rate(spec: RunSpec, step: int, steps_per_epoch: int) -> float:
    """The learning rate at optimiser step `step` (0-based)."""
    total = spec.epochs * steps_per_epoch
    warm = int(round(spec.warmup_epochs * steps_per_epoch))
    if step < warm:
        return spec.lr * (step + 1) / warm
    if spec.schedule == "cosine":
        return 0.5 * spec.lr * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))
    if spec.schedule == "step":
        return spec.lr * spec.lr_gamma ** ((step // steps_per_epoch) // spec.lr_step_epochs)
    return spec.lr


def make_optimizer(spec: RunSpec, model: nn.Module) -> torch.optim.Optimizer:
    """SGD (momentum, optional Nesterov) or AdamW (betas = (momentum, 0.999)); decay on every parameter."""
    params = model.parameters()
    if spec.optimizer == "sgd":
        return torch.optim.SGD(params, lr=spec.lr, momentum=spec.momentum, nesterov=spec.nesterov,
                               weight_decay=spec.weight_decay)
    return torch.optim.AdamW(params, lr=spec.lr, betas=(spec.momentum, 0.999), weight_decay=spec.weight_decay)


# --- augmentation on uint8 batches (N, C, H, W), randomness from `gen` -----------------------
def crop_flip(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Zero-pad by size/8 (4 px at 32 px), random crop back to size, random horizontal flip."""
    n, _, h, w = x.shape
    pad = max(1, h // 8)
    padded = F.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen).to(x.device)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen).to(x.device)
    flip = torch.rand(n, generator=gen).to(x.device) < 0.5
    rows = (dy.view(n, 1) + torch.arange(h, device=x.device)).view(n, 1, h, 1)
    cols = dx.view(n, 1) + torch.arange(w, device=x.device)
    cols = torch.where(flip.view(n, 1), cols.flip(1), cols).view(n, 1, 1, w)
    batch = torch.arange(n, device=x.device).view(n, 1, 1, 1)
    chan = torch.arange(x.shape[1], device=x.device).view(1, -1, 1, 1)
    return padded[batch, chan, rows, cols]


def resized_crop_flip(x: torch.Tensor, gen: torch.Generator, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)) -> torch.Tensor:
    """Random-resized crop (area `scale`, aspect `ratio`, bilinear back to size) and horizontal flip."""
    n, _, h, w = x.shape
    out = torch.empty_like(x)
    log_r = torch.log(torch.tensor(ratio))
    for i in range(n):
        for _ in range(10):
            area = h * w * float(torch.empty(1).uniform_(*scale, generator=gen))
            r = math.exp(float(torch.empty(1).uniform_(float(log_r[0]), float(log_r[1]), generator=gen)))
            cw, ch = int(round(math.sqrt(area * r))), int(round(math.sqrt(area / r)))
            if 0 < cw <= w and 0 < ch <= h:
                break
        else:
            cw, ch = w, h
        top = int(torch.randint(0, h - ch + 1, (1,), generator=gen))
        left = int(torch.randint(0, w - cw + 1, (1,), generator=gen))
        crop = x[i:i + 1, :, top:top + ch, left:left + cw].float()
        crop = F.interpolate(crop, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
        if float(torch.rand(1, generator=gen)) < 0.5:
            crop = crop.flip(3)
        out[i] = crop.round().clamp(0, 255).to(torch.uint8)[0]
    return out


AUGMENT: dict[str, Callable | None] = {"none": None, "crop_flip": crop_flip, "rrc_flip": resized_crop_flip}
CLIP_RRC_SCALE = (0.5, 1.0)  # the video reference's RandomResizedCrop(224, scale=(0.5, 1.0))
#: Applied while decoding, so only on streamed (image-folder) datasets.
STREAM_ONLY = ("deit",)


def cutmix(x: torch.Tensor, perm: torch.Tensor, lam: float, rng: np.random.Generator) -> tuple[torch.Tensor, float]:
    """CutMix (Yun et al. 2019, timm's box): paste a box of x[perm] of area about (1 - lam) into x; returns the
    mixed batch and lam corrected to the box's clipped area."""
    h, w = x.shape[-2:]
    cut = math.sqrt(1.0 - lam)
    ch, cw = int(h * cut), int(w * cut)
    cy, cx = int(rng.integers(0, h)), int(rng.integers(0, w))
    y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, h)
    x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, w)
    out = x.clone()
    out[..., y0:y1, x0:x1] = x[perm][..., y0:y1, x0:x1]
    return out, 1.0 - (y1 - y0) * (x1 - x0) / (h * w)


def mix(x: torch.Tensor, y: torch.Tensor, spec: RunSpec, rng: np.random.Generator, perm: Callable[[], torch.Tensor]):
    """Mixup or CutMix of a normalised batch: (x, y, y2, lam); the loss is lam CE(y) + (1 - lam) CE(y2).

    With both on, CutMix with probability 1/2 (DeiT's switch probability). `rng` draws the choice, lam and the
    box; `perm()` the partners. With mixup alone the draws are mixup's: one Beta, then the permutation.
    """
    use_cutmix = spec.cutmix > 0 and (spec.mixup == 0 or rng.random() < 0.5)
    alpha = spec.cutmix if use_cutmix else spec.mixup
    lam = float(rng.beta(alpha, alpha))
    p = perm()
    if use_cutmix:
        x, lam = cutmix(x, p, lam, rng)
    else:
        x = lam * x + (1 - lam) * x[p]
    return x, y, y[p], lam


def augment_batch(augment: Callable, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """`augment` on images (N, C, H, W), or on clips (N, T, C, H, W) with one crop and flip per clip, the same
    for all its frames (rrc_flip then takes area scale CLIP_RRC_SCALE, the video reference's)."""
    if x.ndim != 5:
        return augment(x, gen)
    n, t, c, h, w = x.shape
    kwargs = {"scale": CLIP_RRC_SCALE} if augment is resized_crop_flip else {}
    return augment(x.reshape(n, t * c, h, w), gen, **kwargs).view(n, t, c, h, w)


@torch.no_grad()
def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, info, device: str,
             batch_size: int = 1000) -> float:
    """Top-1 accuracy of `model` on uint8 images."""
    was_training = model.training
    model.eval()
    correct = 0
    for i in range(0, len(labels), batch_size):
        x = datasets.normalize(images[i:i + batch_size].to(device), info)
        correct += int((model(x).argmax(1).cpu() == labels[i:i + batch_size]).sum())
    model.train(was_training)
    return correct / max(1, len(labels))


class Trainer:
    """Trains `spec` one epoch at a time; `state_dict()` captures everything needed to resume.

    `workers`: decoding processes of a streamed dataset (None: up to 8, the CPU cores shared by the
    ranks); `gpu_decode`: decode JPEGs on the GPU (None: where torchvision can, for the "none" and
    "rrc_flip" augmentations). Neither changes the run (`dstlib.data.stream`).
    """

    def __init__(self, spec: RunSpec, device: str = "cpu", data_root: str | None = None, *,
                 workers: int | None = None, gpu_decode: bool | None = None):
        import os

        self.spec, self.device = spec, torch.device(device)
        self.rank, self.world = distributed.rank(), distributed.world()
        models.check_name(spec.model)
        self.train_set = datasets.load(spec.dataset, "train", data_root, val_size=spec.val_size,
                                       split_seed=spec.split_seed, train_subset=spec.train_subset)
        self.test_set = datasets.load(spec.dataset, "test", data_root)
        if spec.monitor_size is not None and spec.monitor_size < len(self.test_set):
            self.test_set = self.test_set.subset(torch.arange(spec.monitor_size))
        self.val_set = (datasets.load(spec.dataset, "val", data_root, val_size=spec.val_size,
                                      split_seed=spec.split_seed) if spec.val_size else None)
        self.info = self.train_set.info
        self.streamed = not hasattr(self.train_set, "images")
        if not self.streamed and (spec.augmentation in STREAM_ONLY or spec.random_erasing):
            raise ValueError(f"augmentation={spec.augmentation!r} with random_erasing={spec.random_erasing} is "
                             f"invalid for {spec.dataset}, held in memory; allowed there: "
                             f"{', '.join(a for a in AUGMENT if a not in STREAM_ONLY)} without random_erasing "
                             f"(deit and random erasing are applied while decoding image folders, e.g. imagenet)")
        self.local_batch = distributed.local_batch(spec.batch_size, self.world)
        n = len(self.train_set)
        self.steps_per_epoch = stream.steps_in_epoch(n, spec.batch_size, self.world)

        torch.manual_seed(spec.seed)
        self.model = models.for_spec(spec, self.info).to(self.device)
        cuda = self.device.type == "cuda"
        # channels-last is faster for convolutions on the CPU too (LeNet-5 16%, EfficientNet-B0 14% a step here)
        self.channels_last = any(isinstance(m, nn.Conv2d) for m in self.model.modules())
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.optimizer = make_optimizer(spec, self.model)
        # CHTs's CSTI topology comes from the pixel correlations of the images trained on
        features = ({"features": self.train_set.images}
                    if spec.method == "chts" and spec.topology_init == "csti" else {})
        self.sparsifier = sparsity.create(spec.method, self.model, optimizer=self.optimizer,
                                          total_steps=spec.epochs * self.steps_per_epoch,
                                          **spec.sparsity_options(), **features)
        self.net = self.model
        if self.world > 1:  # the sparsifier holds the inner model: its mask names are a single process's
            ids = [self.device.index] if cuda else None
            self.net = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        self.amp_dtype = (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16) if cuda else None
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.gen = torch.Generator().manual_seed(derive_seed(spec.seed, "train.data"))
        self.np_gen = np.random.default_rng(derive_seed(spec.seed, "train.mixup"))
        self.criterion = nn.CrossEntropyLoss(label_smoothing=spec.label_smoothing)
        if self.streamed:
            cores = max(1, (os.cpu_count() or 1) // self.world)
            self.workers = min(8, cores) if workers is None else workers
            if gpu_decode is None:
                gpu_decode = spec.augmentation in stream.DEVICE_AUGMENTATIONS and stream.gpu_decoding_works(self.device)
            if gpu_decode and spec.augmentation not in stream.DEVICE_AUGMENTATIONS:
                raise ValueError(f"gpu_decode=True is invalid with augmentation={spec.augmentation!r}; allowed: "
                                 f"{', '.join(stream.DEVICE_AUGMENTATIONS)} (or gpu_decode off)")
            if gpu_decode and spec.random_erasing:
                raise ValueError("gpu_decode=True is invalid with random_erasing > 0; allowed: gpu_decode off")
            self.gpu_decode = bool(gpu_decode)
        else:
            self.images = self.train_set.images.to(self.device)
            self.labels = self.train_set.labels.to(self.device)
        self.epoch, self.step_count, self.history = 0, 0, []
        self._position: dict | None = None  # within an epoch: step, running sums, the in-memory order

    @property
    def done(self) -> bool:
        return self.epoch >= self.spec.epochs

    # --- one epoch ------------------------------------------------------------------------------
    def train_epoch(self, progress: bool = False, on_step: Callable[["Trainer"], None] | None = None) -> dict:
        """Run the rest of the current epoch; append and return its history row.

        `on_step(trainer)` is called after every optimiser step (the store saves mid-epoch checkpoints
        from it); `state_dict()` called there resumes at the next step.
        """
        from tqdm.auto import tqdm

        spec, model = self.spec, self.model
        self.net.train()
        pos = self._position
        if pos is None:
            pos = {"step": 0, "loss_sum": 0.0, "correct": 0, "seen": 0, "seconds": 0.0}
            if not self.streamed:
                pos["order"] = torch.randperm(len(self.labels), generator=self.gen)
        # running sums stay on the device: no host sync per step
        loss_sum = torch.tensor(pos["loss_sum"], dtype=torch.float32, device=self.device)
        correct = torch.tensor(pos["correct"], dtype=torch.long, device=self.device)
        seen, start, t0 = pos["seen"], pos["step"], time.perf_counter() - pos["seconds"]
        bar = tqdm(total=self.steps_per_epoch, initial=start, desc=f"epoch {self.epoch + 1}/{spec.epochs}",
                   disable=not (progress and distributed.is_main()), leave=False)
        batches = self._stream_batches(start) if self.streamed else self._memory_batches(pos["order"], start)
        for b, (x, y, y2, lam) in enumerate(batches, start=start):
            for group in self.optimizer.param_groups:
                group["lr"] = learning_rate(spec, self.step_count, self.steps_per_epoch)
            self.optimizer.zero_grad(set_to_none=True)
            with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
                out = self.net(x)
                loss = lam * self.criterion(out, y) + (1 - lam) * self.criterion(out, y2) if lam < 1 \
                    else self.criterion(out, y)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.sparsifier.step()
            self.step_count += 1
            loss_sum += loss.detach() * len(y)
            correct += (out.argmax(1) == y).sum()
            seen += len(y)
            bar.update(1)
            if progress and b % 50 == 0 and distributed.is_main():
                bar.set_postfix(loss=f"{float(loss_sum) / seen:.3f}")
            if on_step is not None:
                self._position = {"step": b + 1, "loss_sum": float(loss_sum), "correct": int(correct), "seen": seen,
                                  "seconds": time.perf_counter() - t0, **({"order": pos["order"]} if "order" in pos else {})}
                if b + 1 < self.steps_per_epoch:
                    on_step(self)
        bar.close()
        self._position = None
        self.epoch += 1
        total_loss, total_correct, total_seen = distributed.all_sum([float(loss_sum), float(correct), seen], self.device)
        row = {"epoch": self.epoch, "step": self.step_count, "lr": learning_rate(spec, self.step_count - 1, self.steps_per_epoch),
               "train_loss": total_loss / total_seen, "train_acc": int(total_correct) / total_seen,
               "test_acc": self.accuracy(self.test_set), "test_images": len(self.test_set),
               "seconds": time.perf_counter() - t0}
        if self.val_set is not None:
            row["val_acc"] = self.accuracy(self.val_set)
        row.update(self.sparsifier.log())
        self.history.append(row)
        return row

    def _finish_batch(self, x: torch.Tensor) -> torch.Tensor:
        x = datasets.normalize(x, self.info)
        if self.channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def _memory_batches(self, order: torch.Tensor, start: int):
        """(x, y, y2, lam) per step from the in-memory set: the global batch, augmented and mixed, then this rank's share."""
        spec, B = self.spec, self.spec.batch_size
        order = order.to(self.device)
        augment = AUGMENT[spec.augmentation]
        for b in range(start, self.steps_per_epoch):
            idx = order[b * B:(b + 1) * B]
            x, y = self.images[idx], self.labels[idx]
            if augment is not None:
                x = augment_batch(augment, x, self.gen)
            x = self._finish_batch(x)
            lam, y2 = 1.0, y
            if spec.mixup > 0 or spec.cutmix > 0:
                x, y, y2, lam = mix(x, y, spec, self.np_gen,
                                    lambda: torch.randperm(len(y), generator=self.gen).to(self.device))
            if self.world > 1:
                x, y, y2 = x[self.rank::self.world], y[self.rank::self.world], y2[self.rank::self.world]
            yield x, y, y2, lam

    def _stream_batches(self, start: int):
        """(x, y, y2, lam) per step from the streaming loader (this rank's share of the global batch)."""
        spec = self.spec
        cuda = self.device.type == "cuda"
        loader = stream.loader(self.train_set, seed=spec.seed, epoch=self.epoch, batch_size=spec.batch_size,
                               augmentation=spec.augmentation, start=start, rank=self.rank, world=self.world,
                               workers=self.workers, pin_memory=cuda, random_erasing=spec.random_erasing,
                               encoded=self.gpu_decode)
        for b, batch in enumerate(loader, start=start):
            if self.gpu_decode:
                data, params, y = batch
                x = stream.decode_batch(data, params, self.info.image_size, self.device)
            else:
                x, y = batch
                x = x.to(self.device, non_blocking=True)
            y = y.to(self.device, non_blocking=True)
            x = self._finish_batch(x)
            lam, y2 = 1.0, y
            if spec.mixup > 0 or spec.cutmix > 0:  # draws that are pure functions of the step (and rank)
                step = self.epoch * self.steps_per_epoch + b
                rng = np.random.default_rng([derive_seed(spec.seed, "train.stream.mix"), step])
                perm = np.random.default_rng([derive_seed(spec.seed, "train.stream.mix.perm"), step, self.rank])
                x, y, y2, lam = mix(x, y, spec, rng, lambda: torch.from_numpy(perm.permutation(len(y))).to(self.device))
            yield x, y, y2, lam

    # --- evaluation --------------------------------------------------------------------------------
    @torch.no_grad()
    def accuracy(self, dataset, batch_size: int = 1000) -> float:
        """Top-1 accuracy on `dataset` (in memory, or decoded by the workers); each rank its share, summed."""
        idx = range(self.rank, len(dataset), self.world)
        self.model.eval()
        correct = 0
        try:
            if hasattr(dataset, "images"):
                index = torch.tensor(list(idx), dtype=torch.long)
                for i in range(0, len(index), batch_size):
                    j = index[i:i + batch_size]
                    x = datasets.normalize(dataset.images[j].to(self.device), self.info)
                    correct += int((self.model(x).argmax(1).cpu() == dataset.labels[j]).sum())
            else:
                cuda = self.device.type == "cuda"
                for x, y in stream.eval_loader(dataset, idx, batch_size=min(batch_size, 256),
                                               workers=getattr(self, "workers", 0), pin_memory=cuda):
                    x = self._finish_batch(x.to(self.device, non_blocking=True))
                    with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
                        correct += int((self.model(x).argmax(1).cpu() == y).sum())
        finally:
            self.net.train()
        return distributed.all_sum([correct], self.device)[0] / max(1, len(dataset))

    # --- checkpoint state ------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        state = {"epoch": self.epoch, "step_count": self.step_count, "history": self.history,
                 "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "sparsifier": self.sparsifier.state_dict(), "scaler": self.scaler.state_dict(),
                 "gen": self.gen.get_state(), "np_gen": self.np_gen.bit_generator.state,
                 "torch_rng": torch.get_rng_state()}
        if self._position is not None:
            state["position"] = dict(self._position)
        if self.device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        return state

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.step_count, self.history = state["epoch"], state["step_count"], list(state["history"])
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.sparsifier.load_state_dict(state["sparsifier"])
        if state["scaler"]:
            self.scaler.load_state_dict(state["scaler"])
        self.gen.set_state(state["gen"])
        self.np_gen.bit_generator.state = state["np_gen"]
        torch.set_rng_state(state["torch_rng"])
        if "cuda_rng" in state and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)
        self._position = dict(state["position"]) if "position" in state else None
