"""The training loop: one `Trainer` per run spec, advanced an epoch at a time.

Per batch: augment (on the device, uint8; clips (N, T, C, H, W) get one crop
and flip per clip), normalise, optional mixup, forward,
cross-entropy with label smoothing, backward, optimiser step, then
`sparsifier.step()`, which re-applies the masks and, on its update steps,
changes the topology from the weights and the dense `.grad` of the step just
taken. The learning rate is a pure function of the step (linear warm-up, then
cosine to 0, step decay or constant), so no scheduler state can drift.

Determinism: the model is initialised under `torch.manual_seed(spec.seed)`;
shuffling, augmentation, mixup and the sparsifier draw from their own
generators, seeded from the spec's seed through `config.derive_seed` (never
the init's own stream), and their states (and the global RNG states) are part of `state_dict()`.
The same spec gives bitwise-identical weights on the CPU, and a run resumed
from any epoch's checkpoint ends exactly where an uninterrupted one does.

On CUDA: automatic mixed precision (bfloat16 where supported, else float16
with a gradient scaler). Convolutional models train in channels_last memory
format on every device. Weights stay float32.
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
from dstlib import models, sparsity
from dstlib.config import RunSpec, derive_seed


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
    """Trains `spec` one epoch at a time; `state_dict()` captures everything needed to resume."""

    def __init__(self, spec: RunSpec, device: str = "cpu", data_root: str | None = None):
        self.spec, self.device = spec, torch.device(device)
        models.check_name(spec.model)
        self.train_set = datasets.load(spec.dataset, "train", data_root, val_size=spec.val_size,
                                       split_seed=spec.split_seed, train_subset=spec.train_subset)
        self.test_set = datasets.load(spec.dataset, "test", data_root)
        if spec.monitor_size is not None and spec.monitor_size < len(self.test_set):
            self.test_set = self.test_set.subset(torch.arange(spec.monitor_size))
        self.val_set = (datasets.load(spec.dataset, "val", data_root, val_size=spec.val_size,
                                      split_seed=spec.split_seed) if spec.val_size else None)
        self.info = self.train_set.info
        if not hasattr(self.train_set, "images"):
            raise ValueError(f"dataset={spec.dataset!r} is decoded from folders; the in-memory training "
                             "loop supports fashion_mnist, cifar10, cifar100, tiny_imagenet and the video datasets")
        n = len(self.train_set)
        self.steps_per_epoch = n // spec.batch_size + (n % spec.batch_size > 1)  # a lone last image would break BatchNorm

        torch.manual_seed(spec.seed)
        self.model = models.create(spec.model, self.info, widths=spec.widths, stem=spec.stem).to(self.device)
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
        self.amp_dtype = (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16) if cuda else None
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.gen = torch.Generator().manual_seed(derive_seed(spec.seed, "train.data"))
        self.np_gen = np.random.default_rng(derive_seed(spec.seed, "train.mixup"))
        self.criterion = nn.CrossEntropyLoss(label_smoothing=spec.label_smoothing)
        self.images = self.train_set.images.to(self.device)
        self.labels = self.train_set.labels.to(self.device)
        self.epoch, self.step_count, self.history = 0, 0, []

    @property
    def done(self) -> bool:
        return self.epoch >= self.spec.epochs

    def train_epoch(self, progress: bool = False) -> dict:
        """Run one epoch; append and return its history row."""
        from tqdm.auto import tqdm

        spec, model = self.spec, self.model
        model.train()
        augment = AUGMENT[spec.augmentation]
        order = torch.randperm(len(self.labels), generator=self.gen).to(self.device)
        # running sums stay on the device: no host sync per step
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), dtype=torch.long, device=self.device)
        seen, t0 = 0, time.perf_counter()
        bar = tqdm(range(self.steps_per_epoch), desc=f"epoch {self.epoch + 1}/{spec.epochs}",
                   disable=not progress, leave=False)
        for b in bar:
            idx = order[b * spec.batch_size:(b + 1) * spec.batch_size]
            x, y = self.images[idx], self.labels[idx]
            if augment is not None:
                x = augment_batch(augment, x, self.gen)
            x = datasets.normalize(x, self.info)
            if self.channels_last and x.ndim == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            lam, y2 = 1.0, y
            if spec.mixup > 0:
                lam = float(self.np_gen.beta(spec.mixup, spec.mixup))
                perm = torch.randperm(len(y), generator=self.gen).to(self.device)
                x, y2 = lam * x + (1 - lam) * x[perm], y[perm]
            for group in self.optimizer.param_groups:
                group["lr"] = learning_rate(spec, self.step_count, self.steps_per_epoch)
            self.optimizer.zero_grad(set_to_none=True)
            with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
                out = model(x)
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
            if progress and b % 50 == 0:
                bar.set_postfix(loss=f"{float(loss_sum) / seen:.3f}")
        self.epoch += 1
        row = {"epoch": self.epoch, "step": self.step_count, "lr": learning_rate(spec, self.step_count - 1, self.steps_per_epoch),
               "train_loss": float(loss_sum) / seen, "train_acc": int(correct) / seen,
               "test_acc": accuracy(model, self.test_set.images, self.test_set.labels, self.info, self.device),
               "test_images": len(self.test_set),
               "seconds": time.perf_counter() - t0}
        if self.val_set is not None:
            row["val_acc"] = accuracy(model, self.val_set.images, self.val_set.labels, self.info, self.device)
        row.update(self.sparsifier.log())
        self.history.append(row)
        return row

    # --- checkpoint state ------------------------------------------------------------------
    def state_dict(self) -> dict:
        state = {"epoch": self.epoch, "step_count": self.step_count, "history": self.history,
                 "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "sparsifier": self.sparsifier.state_dict(), "scaler": self.scaler.state_dict(),
                 "gen": self.gen.get_state(), "np_gen": self.np_gen.bit_generator.state,
                 "torch_rng": torch.get_rng_state()}
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
