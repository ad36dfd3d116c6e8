"""Sparse-training methods: one base class with small hooks, one subclass per method.

A method is (drop score, grow score, density schedule, when to update):

- ``drop_score``: which active weights to remove (magnitude, or MEST's
  ``|w| + lambda |g|``);
- ``grow_score``: which inactive weights to regrow (uniform random, or the
  dense-gradient magnitude);
- ``density_at`` / ``prune_to_density``: the density after an update and the
  density pruned to before regrowing;
- ``is_update``: the steps with a topology update.

RigL is SET with another grow score; MEST_g and GraNet_g differ from MEST_r
and GraNet_r only by it (the JaxPruner pattern).
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from dstlib.config import derive_seed
from dstlib.sparsity import distributions, masks as masklib, schedules


def _dist_ready() -> bool:
    return (
        torch.distributed.is_available()
        and torch.distributed.is_initialized()
        and torch.distributed.get_world_size() > 1
    )


class Dense:
    """The dense baseline: no masks, ``step()`` only counts steps."""

    name = "dense"

    def __init__(self, model: nn.Module, optimizer: Any = None, total_steps: int | None = None, **_: Any) -> None:
        self.model = model
        self.optimizer = optimizer
        self.total_steps = total_steps
        self.steps = 0
        self.masks: dict[str, torch.Tensor] = {}

    def step(self) -> None:
        self.steps += 1

    def densities(self) -> dict[str, float]:
        return {"overall": 1.0}

    def log(self) -> dict[str, float]:
        return {"density": 1.0, "mean_density": 1.0, "dense_grad_steps": 0.0, "itop": 1.0}

    def state_dict(self) -> dict[str, Any]:
        return {"method": self.name, "step": self.steps, "masks": {}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("method") != self.name:
            raise ValueError(f"state_dict: method {state.get('method')!r} does not match {self.name!r}")
        self.steps = int(state["step"])


class Sparsifier:
    """Base class; as is, the ``static`` method: a random mask, never updated.

    Masks are drawn with an exact count per layer, uniformly at random, at
    ``density_at(0)``. ``step()`` zeroes the weights outside the mask (after
    the optimiser step, so weight decay and momentum cannot revive them) and,
    when ``is_update(step)``, updates the topology from the current weights
    and their ``.grad`` (the dense gradient of the step just taken: the loop
    does not mask gradients).
    """

    name = "static"
    #: Fraction of training after which topology updates stop, when ``update_end`` is None.
    default_update_end = 1.0

    def __init__(
        self,
        model: nn.Module,
        *,
        optimizer: Any = None,
        total_steps: int,
        sparsity: float = 0.5,
        distribution: str = "uniform",
        erk_power_scale: float = 1.0,
        dense_layers: tuple[str, ...] = (),
        dense_first_layer: bool = False,
        sparse_classifier: bool = False,
        update_interval: int = 100,
        prune_rate: float = 0.1,
        prune_rate_decay: str = "polynomial",
        update_end: float | None = None,
        drop_criterion: str = "magnitude",
        drop_lambda: float = 1.0,
        seed: int = 0,
        **method_options: Any,
    ) -> None:
        self.model = model
        self.optimizer = optimizer
        self.total_steps = int(total_steps)
        self.density = 1.0 - float(sparsity)
        self.distribution = distribution
        self.erk_power_scale = float(erk_power_scale)
        self.update_interval = int(update_interval)
        self.initial_prune_rate = float(prune_rate)
        self.prune_rate_decay = prune_rate_decay
        self.update_end = self.default_update_end if update_end is None else float(update_end)
        self.drop_criterion = drop_criterion
        self.drop_lambda = float(drop_lambda)
        # not manual_seed(seed): that stream is the one a model initialised under
        # torch.manual_seed(seed) drew its weights from (see config.derive_seed)
        self.generator = torch.Generator().manual_seed(derive_seed(int(seed), "sparsity"))
        self.configure(**method_options)
        self.last_update = schedules.last_update_step(self.total_steps, self.update_interval, self.update_end)

        layers = masklib.sparse_weights(model, dense_layers, dense_first_layer, sparse_classifier)
        self.names = [n for n, _ in layers]
        self.params = [p for _, p in layers]
        self.shapes = [tuple(p.shape) for p in self.params]
        self.numels = [p.numel() for p in self.params]
        self.total = sum(self.numels)
        self.steps = 0
        self._ramps: dict[int, torch.Tensor] = {}
        self._buffers: dict[tuple[int, str], torch.Tensor] = {}
        self._mask_list: list[torch.Tensor] | None = None
        self.masks: dict[str, torch.Tensor] = {}
        for name, p, k in zip(self.names, self.params, self.counts(self.density_at(0))):
            self.masks[name] = masklib.random_mask(p.shape, k, self.generator, p.device)
        self._sync_masks()
        self.ever_active = {n: m.clone() for n, m in self.masks.items()}
        self._refresh()
        self._reset_state(None)
        self._density_sum = 0.0
        self._density_steps = 0
        self._dense_grad_steps = 0

    # ----- hooks ---------------------------------------------------------
    def configure(self) -> None:
        """Take the method's own options (none here)."""

    def density_at(self, step: int) -> float:
        """Overall density of the sparse layers after an update at ``step`` (and at init for 0)."""
        return self.density

    def prune_to_density(self, step: int) -> float:
        """Density the update prunes to before its prune-rate mutation (MEST: the target)."""
        return self.density_at(step)

    def is_update(self, step: int) -> bool:
        return False

    def rate_at(self, step: int) -> float:
        """Prune rate at an update at ``step`` (0 after ``update_end``)."""
        if step > self.last_update:
            return 0.0
        return schedules.prune_rate(step, self.initial_prune_rate, self.prune_rate_decay, self.total_steps, self.last_update)

    uses_gradient_grow = False

    def drop_score(self, weight: torch.Tensor, grad: torch.Tensor | None) -> torch.Tensor:
        """Higher = keep. ``magnitude``: |w|; ``magnitude_gradient``: |w| + lambda |g| (MEST)."""
        score = weight.detach().abs()
        if self.drop_criterion == "magnitude_gradient":
            score = score + self.drop_lambda * torch.nan_to_num(self._need_grad(grad).abs(), nan=0.0, posinf=1e29)
        return score

    def grow_score(self, weight: torch.Tensor, grad: torch.Tensor | None, out: torch.Tensor | None = None) -> torch.Tensor:
        """Higher = grow (float32, a fresh tensor or ``out``). Here: uniform random from the
        sparsifier's generator (CPU), the same stream as ``torch.rand``."""
        if out is not None and out.device.type == "cpu":
            return out.uniform_(0.0, 1.0, generator=self.generator)
        return torch.rand(weight.shape, generator=self.generator).to(weight.device)

    # ----- machinery -----------------------------------------------------
    def counts(self, density: float) -> list[int]:
        dens = distributions.layer_densities(self.shapes, density, self.distribution, self.erk_power_scale)
        return distributions.active_counts(self.shapes, dens)

    def _need_grad(self, grad: torch.Tensor | None) -> torch.Tensor:
        if grad is None:
            raise RuntimeError(
                f"{self.name}: a weight has no .grad at the topology update; call sp.step() after "
                "optimizer.step() and before optimizer.zero_grad()"
            )
        return grad.detach()

    @torch.no_grad()
    def apply_masks(self) -> None:
        """Zero every weight outside its mask."""
        if self._to_mask:
            torch._foreach_mul_(self._to_mask, self._masks_to_apply)

    def _refresh(self, counts: list[int] | None = None) -> None:
        """Derived state of the masks; ``counts``: the active counts when the caller knows them."""
        # masks in the weights' dtype: multiplying by them is ~5x faster than by bool on the CPU;
        # rewritten in place after the first time (no fresh pages)
        if getattr(self, "_mask_list", None) is None:
            self._mask_list = [self.masks[n].to(p.dtype) for n, p in zip(self.names, self.params)]
        else:
            for f, n in zip(self._mask_list, self.names):
                f.copy_(self.masks[n])
        if counts is None:
            self.active = {n: int(torch.count_nonzero(m)) for n, m in self.masks.items()}
        else:
            self.active = dict(zip(self.names, counts))
        partial = [i for i, (n, k) in enumerate(zip(self.names, self.numels)) if self.active[n] < k]
        self._to_mask = [self.params[i] for i in partial]  # full masks (AC/DC's dense phases) cost nothing
        self._masks_to_apply = [self._mask_list[i] for i in partial]
        self._overall = sum(self.active.values()) / self.total if self.total else 1.0

    def _sync_masks(self) -> None:
        """Under torch.distributed, every rank takes rank 0's masks."""
        if not _dist_ready():
            return
        for name in self.names:
            buf = self.masks[name].to(torch.uint8)
            torch.distributed.broadcast(buf, src=0)
            self.masks[name] = buf.bool()

    @torch.no_grad()
    def _reset_state(self, keep: list[torch.Tensor] | None) -> None:
        """Zero the optimiser state (momentum, Adam moments) outside ``keep``, float
        masks per sparse weight (None: the current masks, and zero the weights too).

        After an update ``keep`` is the masks *before* it: every newly activated
        position was inactive then, so its state is zeroed; positions inactive
        before and after lose state they would never use (their weights are
        re-zeroed every step and their state reset again if they are regrown).
        """
        state = getattr(self.optimizer, "state", {}) if self.optimizer is not None else {}
        for i, p in enumerate(self.params):
            keep_f = self._mask_list[i] if keep is None else keep[i]
            if keep is None:
                p.mul_(keep_f)
            for value in state.get(p, {}).values():
                if torch.is_tensor(value) and value.shape == p.shape and value.is_floating_point():
                    value.mul_(keep_f.to(value.dtype))

    def step(self) -> None:
        """Call once after every ``optimizer.step()``."""
        self.steps += 1
        self.apply_masks()
        if self.is_update(self.steps):
            self.update(self.steps)
        self._density_sum += self._overall
        self._density_steps += 1

    @torch.no_grad()
    def update(self, step: int) -> None:
        """Drop to ``prune_to - floor(rate * prune_to)`` weights by drop score,
        then regrow up to the ``density_at(step)`` count by grow score.

        Grow candidates are all positions not kept, so a just-dropped weight
        can be regrown; it then keeps its value and optimiser state (RigL's
        ``sparse_optimizers_base.py``). Newly active weights start at zero with
        zeroed optimiser state. Ties (equal scores) go to the lower flat index:
        it is dropped first and grown first, so updates are deterministic.
        """
        rate = self.rate_at(step)
        after = self.counts(self.density_at(step))
        base = self.counts(self.prune_to_density(step))
        new_masks, new_counts = {}, []
        for i, (name, p) in enumerate(zip(self.names, self.params)):
            old = self.masks[name]
            n_keep = min(base[i] - math.floor(rate * base[i]), self.active[name])
            n_drop = self.active[name] - n_keep
            n_grow = max(after[i] - n_keep, 0)
            # drop the n_drop lowest drop scores among the active weights, grow the n_grow highest
            # grow scores among the rest
            keep = old ^ self._drop(i, p, old, n_drop)  # the dropped positions are all active
            if n_grow > 0:
                score = self.grow_score(p, p.grad, out=self._buffer(i, "key"))
                keep |= masklib.top_k_mask(self._exclude(i, score, keep), n_grow, scratch=self._buffer(i, "select"))
            new_masks[name] = keep
            new_counts.append(n_keep + n_grow)
        used_grad = self.uses_gradient_grow or self.drop_criterion == "magnitude_gradient"
        self._commit(new_masks, used_grad, new_counts)

    def _drop(self, i: int, p: torch.Tensor, active: torch.Tensor, n_drop: int) -> torch.Tensor:
        """The ``n_drop`` active positions with the lowest drop score (ties: lower flat index)."""
        if n_drop <= 0:
            return torch.zeros_like(active)
        key = self._buffer(i, "key")
        if self.drop_criterion == "magnitude" and p.dtype == key.dtype:
            torch.abs(p.detach(), out=key)
        else:
            key.copy_(self.drop_score(p, p.grad))
        excluded = torch.logical_not(active, out=self._buffer(i, "bool", torch.bool))
        return masklib.top_k_mask(self._exclude(i, key.neg_(), excluded), n_drop, scratch=self._buffer(i, "select"))

    def _buffer(self, i: int, slot: str, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Scratch tensor of layer i's shape, kept between updates on the CPU (fresh pages
        of a multi-megabyte temporary cost about as much as the passes over it); a new
        tensor elsewhere (the CUDA caching allocator already reuses memory)."""
        p = self.params[i]
        if p.device.type != "cpu":
            return torch.empty(p.shape, dtype=dtype, device=p.device)
        buf = self._buffers.get((i, slot))
        if buf is None:
            buf = self._buffers[(i, slot)] = torch.empty(p.shape, dtype=dtype)
        return buf

    def _exclude(self, i: int, key: torch.Tensor, excluded: torch.Tensor) -> torch.Tensor:
        """``key`` (float32 scores in [-1e29, 1e29], modified in place) plus a ramp in
        [-2e30, -1e30] at the ``excluded`` entries: below every score, and nearly all
        distinct because numpy's selection slows down ~30x on large blocks of equal values."""
        ramp = self._ramps.get(i)
        if ramp is None:
            n = key.numel()
            ramp = torch.linspace(-1e30, -2e30, n, device=key.device).reshape(key.shape)
            self._ramps[i] = ramp
        return key.addcmul_(self._buffer(i, "excluded").copy_(excluded), ramp)

    def _commit(self, new_masks: dict[str, torch.Tensor], used_grad: bool, counts: list[int] | None = None) -> None:
        self.masks = new_masks
        self._sync_masks()
        for n in self.names:
            self.ever_active[n] |= self.masks[n]
        self._reset_state(self._mask_list)  # the float masks still hold the masks before the update
        self._refresh(counts)
        self.apply_masks()
        if used_grad:
            self._dense_grad_steps += 1

    # ----- reporting and state --------------------------------------------
    def densities(self) -> dict[str, float]:
        """Density of each masked weight (unmasked parameters are dense) and
        ``"overall"``, the density of all masked weights together."""
        out = {n: self.active[n] / numel for n, numel in zip(self.names, self.numels)}
        out["overall"] = self._overall
        return out

    def itop(self) -> float:
        """In-time over-parameterisation rate: the fraction of masked weights ever active."""
        ever = sum(int(torch.count_nonzero(m)) for m in self.ever_active.values())
        return ever / self.total if self.total else 1.0

    def log(self) -> dict[str, float]:
        """Numbers for the run history; resets the per-interval accumulators."""
        mean = self._density_sum / self._density_steps if self._density_steps else self._overall
        out = {
            "density": self._overall,
            "mean_density": mean,
            "dense_grad_steps": float(self._dense_grad_steps),
            "itop": self.itop(),
        }
        for n, numel in zip(self.names, self.numels):
            out[f"density/{n}"] = self.active[n] / numel
        self._density_sum = 0.0
        self._density_steps = 0
        self._dense_grad_steps = 0
        return out

    def state_dict(self) -> dict[str, Any]:
        """Masks, step count, RNG state and accumulators: tensors (CPU), numbers
        and strings only, so ``torch.load(weights_only=True)`` reads it."""
        return {
            "method": self.name,
            "step": self.steps,
            "masks": {n: m.cpu().clone() for n, m in self.masks.items()},
            "ever_active": {n: m.cpu().clone() for n, m in self.ever_active.items()},
            "rng": self.generator.get_state(),
            "density_sum": self._density_sum,
            "density_steps": self._density_steps,
            "dense_grad_steps": self._dense_grad_steps,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("method") != self.name:
            raise ValueError(f"state_dict: method {state.get('method')!r} does not match {self.name!r}")
        if set(state["masks"]) != set(self.names):
            raise ValueError(f"state_dict: masked parameters {sorted(state['masks'])} do not match {self.names}")
        for n, p in zip(self.names, self.params):
            if tuple(state["masks"][n].shape) != tuple(p.shape):
                raise ValueError(f"state_dict: mask {n!r} has shape {tuple(state['masks'][n].shape)}, not {tuple(p.shape)}")
        self.steps = int(state["step"])
        self.masks = {n: state["masks"][n].to(device=p.device, dtype=torch.bool).clone() for n, p in zip(self.names, self.params)}
        self.ever_active = {n: state["ever_active"][n].to(device=p.device, dtype=torch.bool).clone() for n, p in zip(self.names, self.params)}
        self.generator.set_state(state["rng"])
        self._density_sum = float(state["density_sum"])
        self._density_steps = int(state["density_steps"])
        self._dense_grad_steps = int(state["dense_grad_steps"])
        self._refresh()
        self.apply_masks()


class Static(Sparsifier):
    """``static``: random mask at the target density, never updated."""


class SET(Sparsifier):
    """``set``: every dT steps drop the ``rate`` fraction of smallest |w| per
    layer and regrow as many uniformly at random among the inactive weights.
    Updates stop at 75% of training (RigL's code, which also implements SET)."""

    name = "set"
    default_update_end = 0.75

    def is_update(self, step: int) -> bool:
        return schedules.is_update_step(step, self.update_interval, self.last_update)


class GradientGrow:
    """Mixin: grow the inactive weights with the largest dense-gradient magnitude
    (ties: lower flat index). The gradient is the ``.grad`` of the step just taken."""

    uses_gradient_grow = True

    def grow_score(self, weight: torch.Tensor, grad: torch.Tensor | None, out: torch.Tensor | None = None) -> torch.Tensor:
        # inf/nan gradients (a step skipped by GradScaler) must not break the selection
        g = self._need_grad(grad)
        if out is None:
            return torch.nan_to_num(g.abs(), nan=0.0, posinf=1e29).float()
        return out.copy_(g).abs_().nan_to_num_(nan=0.0, posinf=1e29)


class RigL(GradientGrow, SET):
    """``rigl``: SET with gradient regrowth. Stops at 75% of training
    (rigl-torch T_end, RigL's ImageNet end_step 25k of 32k)."""

    name = "rigl"


class MEST(SET):
    """``mest_r``: soft memory bound. The run starts at density ``b (1 + soft_bound)``;
    every dT steps it prunes by drop score to ``b`` minus the prune-rate
    mutation, then regrows (at random) to ``b + b_s(t)``, with ``b_s`` decaying
    polynomially to 0 at the last update (see ``schedules.mest_density``), so
    the run ends at ``b``. Updates stop at 75% (MEST's scripts: epoch 120 of 160)."""

    name = "mest_r"
    default_update_end = 0.75

    def configure(self, soft_bound: float = 0.1, bound_power: float = schedules.POLYNOMIAL_POWER) -> None:
        self.soft_bound = float(soft_bound)
        self.bound_power = float(bound_power)

    def density_at(self, step: int) -> float:
        return schedules.mest_density(step, self.density, self.soft_bound, self.last_update, self.bound_power)

    def prune_to_density(self, step: int) -> float:
        return self.density


class MESTG(GradientGrow, MEST):
    """``mest_g``: MEST with gradient regrowth (the paper's own variant)."""

    name = "mest_g"


class GraNet(SET):
    """``granet_r``: gradual magnitude pruning from ``initial_density`` to the
    target with the cubic schedule over the first ``prune_end`` of training,
    plus zero-cost neuroregeneration (drop ``rate`` of the remaining weights,
    regrow as many, at random) at every update until ``update_end`` (default:
    the end of training, as GraNet's code). Pruning is per layer (GraNet's
    ``GraNet_uniform``; its default prunes globally), so the layer
    distribution holds at every density."""

    name = "granet_r"
    default_update_end = 1.0

    def configure(self, initial_density: float | None = None, prune_end: float = 0.5) -> None:
        self.prune_end = float(prune_end)
        self.initial_density = (
            schedules.granet_initial_density(self.density) if initial_density is None else float(initial_density)
        )

    def _prune_last(self) -> int:
        return schedules.last_update_step(self.total_steps, self.update_interval, self.prune_end)

    def density_at(self, step: int) -> float:
        return schedules.granet_density(step, self.initial_density, self.density, self._prune_last())

    def is_update(self, step: int) -> bool:
        last = max(self.last_update, self._prune_last())
        return schedules.is_update_step(step, self.update_interval, last)


class GraNetG(GradientGrow, GraNet):
    """``granet_g``: GraNet with gradient regrowth (GraNet's own default)."""

    name = "granet_g"


class ACDC(Sparsifier):
    """``acdc``: alternating compressed / decompressed phases.

    Dense warm-up, then alternating phases, ending with a compressed
    fine-tune (``schedules.acdc_compressed``). Entering a compressed phase
    keeps the top-|w| weights of each layer at the layer's target density
    (per layer to keep the layer distribution; AC/DC's code uses one global
    threshold). Entering a decompressed phase activates every weight; the
    pruned ones re-enter at zero with zeroed optimiser state (AC/DC resets
    momentum only with ``--reset_momentum_after_recycling``). Phase changes
    replace ``update_interval`` and ``update_end``. With ``warmup=0`` the
    first compressed phase starts from a random mask (weights are random then).
    """

    name = "acdc"

    def configure(self, warmup: float = 0.1, phase: float = 0.05, final: float = 0.15) -> None:
        self.warmup, self.phase, self.final = float(warmup), float(phase), float(final)

    def _compressed(self, step: int) -> bool:
        return schedules.acdc_compressed(step, self.total_steps, self.warmup, self.phase, self.final)

    def density_at(self, step: int) -> float:
        return self.density if self._compressed(step) else 1.0

    def is_update(self, step: int) -> bool:
        return step < self.total_steps and self._compressed(step) != self._compressed(step - 1)

    @torch.no_grad()
    def update(self, step: int) -> None:
        counts = self.counts(self.density_at(step))
        new = {}
        for i, (name, p) in enumerate(zip(self.names, self.params)):
            if counts[i] >= p.numel():
                new[name] = torch.ones_like(self.masks[name])
            else:
                new[name] = masklib.top_k_mask(self._exclude(i, self.drop_score(p, p.grad).float(), ~self.masks[name]), counts[i])
        self._commit(new, self.drop_criterion == "magnitude_gradient")
