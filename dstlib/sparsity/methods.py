"""Sparse-training methods: one base class with small hooks, one subclass per method.

A method is (drop score, grow score, density schedule, when to update):

- ``drop_scores``: which active weights to remove (magnitude, or MEST's
  ``|w| + lambda |g|``);
- ``grow_scores``: which inactive weights to regrow (uniformly at random, or
  the dense-gradient magnitude);
- ``density_at`` / ``prune_to_density``: the density after an update and the
  density pruned to before regrowing;
- ``is_update`` / ``rate_at``: the steps with a topology update and the
  fraction of the active weights it replaces.

RigL is SET with another grow score; MEST_g and GraNet_g differ from MEST_r
and GraNet_r only by it (the JaxPruner pattern).

Masked weights stay exactly zero between updates. With a ``torch.optim.SGD``
(the paper's optimiser; not ``fused=True``, no closure) the mask is folded
into the optimiser's own momentum pass: the masked weights are stepped by
``optim.masked_sgd`` (``torch.optim.SGD``'s update with the gradient entering
the momentum buffer through the mask), so their momentum is zero off the mask
and no weight outside it moves, at no more cost than SGD's own step. With any
other optimiser ``step()`` re-applies the masks after the optimiser's step.
"""
from __future__ import annotations

import math
import weakref
from typing import Any

import numpy as np
import torch
from torch import nn

from dstlib.config import derive_seed
from dstlib.sparsity import distributions, masks as masklib, optim, schedules


def _dist_ready() -> bool:
    return (
        torch.distributed.is_available()
        and torch.distributed.is_initialized()
        and torch.distributed.get_world_size() > 1
    )


def _host(mask: torch.Tensor) -> np.ndarray:
    """A bool mask as a flat numpy array (a view on the CPU). Selections run on the host:
    numpy's flatnonzero, partition and fancy indexing cost a fraction of torch's on the CPU,
    and every device then draws the very same positions."""
    return mask.detach().reshape(-1).cpu().numpy()


def _gather(t: torch.Tensor, idx: np.ndarray) -> np.ndarray:
    """``t.flatten()[idx]`` in logical (row-major) order as float32 numpy, whatever ``t``'s
    device, dtype or memory layout."""
    if t.device.type == "cpu" and t.dtype == torch.float32 and t.is_contiguous():
        return t.detach().numpy().reshape(-1).take(idx)
    flat = t.detach().reshape(-1)
    return flat.index_select(0, torch.from_numpy(idx).to(flat.device)).float().cpu().numpy()


class Dense:
    """The dense baseline: no masks, ``step()`` only counts steps."""

    name = "dense"

    def __init__(self, model: nn.Module, optimizer: Any = None, total_steps: int | None = None, **_: Any) -> None:
        self.model = model
        self.optimizer = optimizer
        self.total_steps = total_steps
        self.steps = 0
        self.updates = 0
        self.masks: dict[str, torch.Tensor] = {}

    def step(self, skipped: bool = False) -> None:
        self.steps += 1

    def densities(self) -> dict[str, float]:
        return {"overall": 1.0}

    def log(self) -> dict[str, float]:
        return {"density": 1.0, "mean_density": 1.0, "dense_grad_steps": 0.0, "itop": 1.0,
                "updates": 0.0, "update_end_step": 0.0}

    def state_dict(self) -> dict[str, Any]:
        return {"method": self.name, "step": self.steps, "masks": {}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("method") != self.name:
            raise ValueError(f"state_dict: method {state.get('method')!r} does not match {self.name!r}")
        self.steps = int(state["step"])


class Sparsifier:
    """Base class; as is, the ``static`` method: a random mask, never updated.

    Masks are drawn with an exact count per layer, uniformly at random, at
    ``density_at(0)``. ``step()`` keeps the weights outside the mask at zero
    (module docstring) and, when ``is_update(step)``, updates the topology
    from the current weights and their ``.grad`` (the dense gradient of the
    step just taken: gradients are never masked in ``.grad``).

    A step whose optimiser step did not happen (a ``GradScaler`` that found
    inf/NaN gradients skips it; detected through the optimiser's step hooks,
    or told by ``step(skipped=True)``) changes nothing, and a topology update
    due then is deferred to the next step that is taken (with the schedule's
    values of the step it was due at).
    """

    name = "static"
    #: Fraction of training after which drop-and-regrow stops, when ``update_end`` is None.
    default_update_end = 1.0
    #: Prune-rate decay when ``prune_rate_decay`` is None.
    default_prune_rate_decay = "polynomial"
    uses_gradient_grow = False

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
        dense_patterns: tuple[str, ...] = (),
        dense_types: tuple[str, ...] = (),
        update_interval: int = 100,
        prune_rate: float = 0.1,
        prune_rate_decay: str | None = None,
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
        self.prune_rate_decay = self.default_prune_rate_decay if prune_rate_decay is None else prune_rate_decay
        self.update_end = self.default_update_end if update_end is None else float(update_end)
        self.drop_criterion = drop_criterion
        self.drop_lambda = float(drop_lambda)
        # not seeded with `seed` itself: that stream is the one a model initialised under
        # torch.manual_seed(seed) drew its weights from (see config.derive_seed)
        self.rng = np.random.default_rng(derive_seed(int(seed), "sparsity"))
        # a second stream for methods that draw with torch (CHTs)
        self.generator = torch.Generator().manual_seed(derive_seed(int(seed), "sparsity.torch"))
        self.configure(**method_options)
        self.last_update = schedules.last_update_step(self.total_steps, self.update_interval, self.update_end)

        layers = masklib.sparse_weights(model, dense_layers, dense_first_layer, sparse_classifier,
                                        dense_patterns, dense_types)
        self.names = [n for n, _ in layers]
        self.params = [p for _, p in layers]
        self.shapes = [tuple(p.shape) for p in self.params]
        self.numels = [p.numel() for p in self.params]
        self.total = sum(self.numels)
        self.steps = 0
        self.updates = 0
        self._pending: int | None = None
        self._buffers: dict[tuple[int, str], torch.Tensor] = {}
        self.masks: dict[str, torch.Tensor] = {}
        for name, p, k in zip(self.names, self.params, self.counts(self.density_at(0))):
            self.masks[name] = masklib.random_mask(p.shape, k, self.rng, p.device)
        self._sync_masks()
        self.ever_active = {n: m.clone() for n, m in self.masks.items()}
        self._mask_list: list[torch.Tensor] = []
        self._refresh()
        self._mask_state()
        self._density_sum = 0.0
        self._density_steps = 0
        self._dense_grad_steps = 0
        self._attach(optimizer)

    # ----- hooks ---------------------------------------------------------
    def configure(self) -> None:
        """Take the method's own options (none here)."""

    def method_options(self) -> dict[str, Any]:
        """The method's own options, as recorded in ``state_dict()["schedule"]``."""
        return {}

    def density_at(self, step: int) -> float:
        """Overall density of the sparse layers after an update at ``step`` (and at init for 0)."""
        return self.density

    def prune_to_density(self, step: int) -> float:
        """Density the update prunes to before its prune-rate mutation (MEST: the target)."""
        return self.density_at(step)

    def is_update(self, step: int) -> bool:
        return False

    def update_end_step(self) -> int:
        """The last step with a topology update (0: none)."""
        return 0

    def rate_at(self, step: int) -> float:
        """Prune rate at an update at ``step`` (0 after ``update_end``)."""
        if step > self.last_update:
            return 0.0
        return schedules.prune_rate(step, self.initial_prune_rate, self.prune_rate_decay, self.total_steps, self.last_update)

    def drop_scores(self, p: torch.Tensor, positions: np.ndarray) -> np.ndarray:
        """Scores of the active flat ``positions`` of ``p`` (higher = keep): |w|, or
        ``magnitude_gradient``: |w| + lambda |g| (MEST)."""
        score = np.abs(_gather(p, positions))
        if self.drop_criterion == "magnitude_gradient":
            g = np.nan_to_num(np.abs(_gather(self._need_grad(p.grad), positions)), nan=0.0, posinf=1e29)
            score += np.float32(self.drop_lambda) * g
        return score

    def grow_scores(self, p: torch.Tensor, positions: np.ndarray) -> np.ndarray | None:
        """Scores of the candidate ``positions`` of ``p`` (higher = grow); None: grow
        uniformly at random among them (the sparsifier's generator)."""
        return None

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

    def _refresh(self) -> None:
        """Float masks (in the weights' dtype and memory layout) and counts, from ``self.masks``."""
        self._mask_list = [torch.empty_like(p).copy_(self.masks[n]) for n, p in zip(self.names, self.params)]
        self.active = {n: int(torch.count_nonzero(m)) for n, m in self.masks.items()}
        self._partial()

    def _partial(self) -> None:
        """The layers with a mask that is not full (full masks, AC/DC's dense phases, cost nothing)."""
        partial = [i for i, (n, k) in enumerate(zip(self.names, self.numels)) if self.active[n] < k]
        self._partial_idx = partial
        self._plan = None  # the masked SGD step's layers per param group, rebuilt on use
        self._to_mask = [self.params[i] for i in partial]
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

    def _state_tensors(self, p: torch.Tensor) -> list[torch.Tensor]:
        """The optimiser's state tensors shaped like ``p`` (SGD momentum, Adam moments)."""
        state = getattr(self.optimizer, "state", None) if self.optimizer is not None else None
        if not state or p not in state:
            return []
        return [v for v in state[p].values() if torch.is_tensor(v) and v.shape == p.shape and v.is_floating_point()]

    @torch.no_grad()
    def _mask_state(self) -> None:
        """Zero the weights and their optimiser state outside the masks (a full pass)."""
        for p, f in zip(self.params, self._mask_list):
            p.mul_(f)
            for v in self._state_tensors(p):
                v.mul_(f.to(v.dtype))
        self._state_dirty = False

    # ----- the optimiser: step detection and the mask folded into SGD -------
    def _attach(self, optimizer: Any) -> None:
        """Register step hooks on a torch optimiser: they tell whether a step was taken
        and run the masked SGD step (weak references: a dropped sparsifier does nothing)."""
        self._hooks: list[Any] = []
        self._stepped = False
        self._fused = False
        self._stash: list[tuple[int, torch.Tensor]] | None = None
        self._state_dirty = False
        if optimizer is None or not hasattr(optimizer, "register_step_post_hook"):
            return
        ref = weakref.ref(self)

        def before(opt, args, kwargs):
            sp = ref()
            if sp is not None:
                sp._before_optimizer_step(args, kwargs)

        def after(opt, args, kwargs):
            sp = ref()
            if sp is not None:
                sp._after_optimizer_step()

        self._hooks = [optimizer.register_step_pre_hook(before), optimizer.register_step_post_hook(after)]

    def __del__(self) -> None:
        for h in getattr(self, "_hooks", ()):
            h.remove()

    def _fusable_groups(self, args: tuple, kwargs: dict) -> list[tuple[dict, list[int]]] | None:
        """(param group, layer indices with a gradient) for the masked SGD step, or None where it
        does not apply. Which layers sit in which group is worked out once per topology."""
        opt = self.optimizer
        # args: (the optimiser, closure?), as Optimizer.step's hooks receive them
        if type(opt) is not torch.optim.SGD or (len(args) > 1 and args[1] is not None) \
                or kwargs.get("closure") is not None:
            return None
        if self._plan is None or self._plan[0] != len(opt.param_groups):
            partial = {id(self.params[i]): i for i in self._partial_idx}
            self._plan = (len(opt.param_groups), [
                (group, [partial[id(p)] for p in group["params"] if id(p) in partial]) for group in opt.param_groups])
        out = []
        for group, layers in self._plan[1]:
            idx = [i for i in layers if self.params[i].grad is not None]
            if not idx:
                continue
            if group.get("fused") or group.get("differentiable") or torch.is_tensor(group["lr"]) \
                    or any(self.params[i].grad.is_sparse for i in idx):
                return None
            out.append((group, idx))
        return out

    def _before_optimizer_step(self, args: tuple, kwargs: dict) -> None:
        groups = self._fusable_groups(args, kwargs)
        self._stash = None
        if groups is None:
            return
        if self._state_dirty:  # a step taken without the masked path left momentum off the masks
            self._mask_state()
        self._stash_groups = groups
        self._stash = []
        for _, idx in groups:
            for i in idx:  # hide the masked weights from torch's own step
                self._stash.append((i, self.params[i].grad))
                self.params[i].grad = None

    def _after_optimizer_step(self) -> None:
        self._stepped = True
        if self._stash is None:
            self._fused = False
            self._state_dirty = True
            return
        for i, g in self._stash:
            self.params[i].grad = g
        with torch.no_grad():
            for group, idx in self._stash_groups:
                optim.masked_sgd(group, [self.params[i] for i in idx], [self._mask_list[i] for i in idx],
                                 self.optimizer.state)
        self._stash = None
        self._fused = True

    # ----- the step ------------------------------------------------------
    def step(self, skipped: bool = False) -> None:
        """Call once after every ``optimizer.step()``. ``skipped=True``: the optimiser
        step just taken was skipped (found automatically with a torch optimiser)."""
        self.steps += 1
        moved = not skipped
        if self._hooks:
            moved, self._stepped = self._stepped, False
            skipped = skipped or not moved
        if moved and not self._fused:
            self.apply_masks()
        self._fused = False
        if self.is_update(self.steps):
            self._pending = self.steps
        if self._pending is not None and not skipped:
            self.update(self._pending)
            self.updates += 1
            self._pending = None
        self._density_sum += self._overall
        self._density_steps += 1

    @torch.no_grad()
    def update(self, step: int) -> None:
        """Drop to ``prune_to - floor(rate * prune_to)`` weights by drop score,
        then regrow up to the ``density_at(step)`` count by grow score.

        Grow candidates are all positions not kept, so a just-dropped weight
        can be regrown; it then keeps its value and optimiser state (RigL's
        ``sparse_optimizers_base.py``). Newly active weights start at zero with
        zeroed optimiser state; dropped ones are zeroed with their state. Ties
        (equal scores) are broken by a random order from the sparsifier's
        generator, so updates are deterministic for a seed.
        """
        rate = self.rate_at(step)
        after = self.counts(self.density_at(step))
        base = self.counts(self.prune_to_density(step))
        changes: list[tuple[torch.Tensor, int] | None] = []
        dense_grad = False
        for i, (name, p) in enumerate(zip(self.names, self.params)):
            n_keep = min(base[i] - math.floor(rate * base[i]), self.active[name])
            n_drop = self.active[name] - n_keep
            n_grow = max(after[i] - n_keep, 0)
            if n_drop == 0 and n_grow == 0:
                changes.append(None)
                continue
            new = _host(self.masks[name]).copy()
            if n_drop > 0:
                active = np.flatnonzero(new)
                new[active[masklib.select(self.drop_scores(p, active), n_drop, largest=False, rng=self.rng)]] = False
            if n_grow > 0:
                cand = np.flatnonzero(~new)  # every position not kept, the just-dropped included
                scores = self.grow_scores(p, cand)
                if scores is None:
                    new[cand[self.rng.choice(cand.size, n_grow, replace=False)]] = True
                else:
                    new[cand[masklib.select(scores, n_grow, rng=self.rng)]] = True
                    dense_grad = True
            changes.append((torch.from_numpy(new).reshape(p.shape).to(p.device), n_keep + n_grow))
        self._commit(changes, dense_grad)

    def _drop(self, i: int, p: torch.Tensor, active: torch.Tensor, n_drop: int) -> torch.Tensor:
        """Bool mask of the ``n_drop`` positions of the bool mask ``active`` with the lowest drop score."""
        out = np.zeros(active.numel(), dtype=bool)
        if n_drop > 0:
            pos = np.flatnonzero(_host(active))
            out[pos[masklib.select(self.drop_scores(p, pos), n_drop, largest=False, rng=self.rng)]] = True
        return torch.from_numpy(out).reshape(active.shape).to(active.device)

    def _buffer(self, i: int, slot: str) -> torch.Tensor:
        """A float32 CPU tensor shaped like layer i's weight, kept for reuse (a subclass's scratch)."""
        buf = self._buffers.get((i, slot))
        if buf is None:
            buf = self._buffers[(i, slot)] = torch.empty(self.shapes[i])
        return buf

    def _scratch(self, i: int) -> torch.Tensor:
        """A float tensor shaped like layer i's weight; on the CPU one buffer reused by
        every layer (fresh multi-megabyte temporaries cost page faults)."""
        p = self.params[i]
        if p.device.type != "cpu":
            return torch.empty(p.shape, dtype=p.dtype, device=p.device)
        buf = getattr(self, "_scratch_buf", None)
        if buf is None or buf.numel() < p.numel() or buf.dtype != p.dtype:
            buf = self._scratch_buf = torch.empty(max(self.numels), dtype=p.dtype)
        return buf[: p.numel()].view(p.shape)

    @torch.no_grad()
    def _commit(self, changes: list[tuple[torch.Tensor, int] | None], dense_grad: bool) -> None:
        """Take the new masks: per layer None (unchanged) or (new mask, its count).

        Weights and optimiser state are multiplied by ``old & new``: dropped,
        newly grown and inactive positions get zero, kept ones (a just-dropped
        weight regrown included) keep theirs. A few full passes over the layer
        cost less than scattered writes to the changed positions."""
        synced = _dist_ready()
        for i, (name, p) in enumerate(zip(self.names, self.params)):
            if synced:  # every rank takes rank 0's new mask
                new = changes[i][0] if changes[i] is not None else self.masks[name]
                buf = new.to(torch.uint8)
                torch.distributed.broadcast(buf, src=0)
                changes[i] = (buf.bool(), int(torch.count_nonzero(buf)))  # rank 0's count
            if changes[i] is None:
                continue
            new, count = changes[i]
            keep = self._scratch(i).copy_((self.masks[name] & new).view(torch.uint8))
            p.mul_(keep)
            for v in self._state_tensors(p):
                v.mul_(keep.to(v.dtype))
            self._mask_list[i].copy_(new.view(torch.uint8))
            self.ever_active[name] |= new
            self.masks[name] = new
            self.active[name] = count
        self._partial()
        if dense_grad:
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
        """Numbers for the run history; resets the per-interval accumulators
        (``mean_density``, ``dense_grad_steps``: topology updates since the last
        call that grew by the dense gradient). ``updates``: topology updates
        performed so far; ``update_end_step``: the step of the last one scheduled."""
        mean = self._density_sum / self._density_steps if self._density_steps else self._overall
        out = {
            "density": self._overall,
            "mean_density": mean,
            "dense_grad_steps": float(self._dense_grad_steps),
            "itop": self.itop(),
            "updates": float(self.updates),
            "update_end_step": float(self.update_end_step()),
        }
        for n, numel in zip(self.names, self.numels):
            out[f"density/{n}"] = self.active[n] / numel
        self._density_sum = 0.0
        self._density_steps = 0
        self._dense_grad_steps = 0
        return out

    def schedule(self) -> dict[str, Any]:
        """The settings that fix the masks' schedule (``state_dict()["schedule"]``)."""
        return {
            "total_steps": self.total_steps, "update_interval": self.update_interval, "density": self.density,
            "distribution": self.distribution, "erk_power_scale": self.erk_power_scale,
            "prune_rate": self.initial_prune_rate, "prune_rate_decay": self.prune_rate_decay,
            "update_end": self.update_end, "drop_criterion": self.drop_criterion, "drop_lambda": self.drop_lambda,
            **self.method_options(),
        }

    def state_dict(self) -> dict[str, Any]:
        """Masks, step count, schedule, RNG state and accumulators: tensors (CPU),
        numbers and strings only, so ``torch.load(weights_only=True)`` reads it."""
        return {
            "method": self.name,
            "step": self.steps,
            "schedule": self.schedule(),
            "masks": {n: m.cpu().clone() for n, m in self.masks.items()},
            "ever_active": {n: m.cpu().clone() for n, m in self.ever_active.items()},
            "rng": self.rng.bit_generator.state,
            "torch_rng": self.generator.get_state(),
            "updates": self.updates,
            "pending": self._pending,
            "density_sum": self._density_sum,
            "density_steps": self._density_steps,
            "dense_grad_steps": self._dense_grad_steps,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore ``state_dict()``'s state; refuses one saved by another method, on
        other weights or with another schedule. Load the optimiser's state first: its
        state outside the masks is zeroed here."""
        if state.get("method") != self.name:
            raise ValueError(f"state_dict: method {state.get('method')!r} does not match {self.name!r}")
        saved, mine = state.get("schedule"), self.schedule()
        if saved is None:
            raise ValueError("state_dict: no schedule recorded (saved by an older dstlib); it cannot be checked, so it is refused")
        for key in [*mine, *(k for k in saved if k not in mine)]:
            if saved.get(key) != mine.get(key):
                raise ValueError(f"state_dict: {key} is {saved.get(key)!r} in the checkpoint but {mine.get(key)!r} "
                                 "here; resume with the settings it was saved with")
        if set(state["masks"]) != set(self.names):
            raise ValueError(f"state_dict: masked parameters {sorted(state['masks'])} do not match {self.names}")
        for n, p in zip(self.names, self.params):
            if tuple(state["masks"][n].shape) != tuple(p.shape):
                raise ValueError(f"state_dict: mask {n!r} has shape {tuple(state['masks'][n].shape)}, not {tuple(p.shape)}")
        self.steps = int(state["step"])
        self.masks = {n: state["masks"][n].to(device=p.device, dtype=torch.bool).clone() for n, p in zip(self.names, self.params)}
        self.ever_active = {n: state["ever_active"][n].to(device=p.device, dtype=torch.bool).clone() for n, p in zip(self.names, self.params)}
        self.rng.bit_generator.state = state["rng"]
        self.generator.set_state(state["torch_rng"])
        self.updates = int(state["updates"])
        self._pending = None if state["pending"] is None else int(state["pending"])
        self._density_sum = float(state["density_sum"])
        self._density_steps = int(state["density_steps"])
        self._dense_grad_steps = int(state["dense_grad_steps"])
        self._refresh()
        self._mask_state()


class Static(Sparsifier):
    """``static``: random mask at the target density, never updated."""


class SET(Sparsifier):
    """``set``: every dT steps drop the ``rate`` fraction of smallest |w| per
    layer and regrow as many uniformly at random among the inactive weights.

    Updates stop at 75% of training: the paper gives no end for SET/RigL
    (footnote 3 defines the rate as a function of the step over all steps,
    which a stop leaves unchanged; their training FLOPs do not depend on it),
    so RigL's code decides (it implements SET too): ImageNet end_step 25k of
    32k, CIFAR 75k of 97.7k, rigl-torch's T_end = 0.75."""

    name = "set"
    default_update_end = 0.75

    def is_update(self, step: int) -> bool:
        return schedules.is_update_step(step, self.update_interval, self.last_update)

    def update_end_step(self) -> int:
        return self.last_update


class GradientGrow:
    """Mixin: grow the inactive weights with the largest dense-gradient magnitude
    (ties: a seeded random order). The gradient is the ``.grad`` of the step just taken."""

    uses_gradient_grow = True

    def grow_scores(self, p: torch.Tensor, positions: np.ndarray) -> np.ndarray:
        # an inf/nan gradient must not break the selection
        return np.nan_to_num(np.abs(_gather(self._need_grad(p.grad), positions)), nan=0.0, posinf=1e29)


class RigL(GradientGrow, SET):
    """``rigl``: SET with gradient regrowth. Stops at 75% of training
    (rigl-torch T_end, RigL's ImageNet end_step 25k of 32k; see SET)."""

    name = "rigl"


class MEST(SET):
    """``mest_r``: soft memory bound. The run starts at density ``b + b_s``;
    every dT steps it prunes by drop score to ``b`` minus the prune-rate
    mutation, then regrows (at random) to ``b + b_s(t)``, with ``b_s`` decaying
    polynomially to 0 at the last update (``schedules.mest_density``), so the
    run ends at ``b``.

    ``b_s``: ``soft_bound`` x ``b`` (``soft_bound_mode="relative"``, the
    paper's CIFAR and Tiny-ImageNet runs: 10%) or ``soft_bound`` itself
    (``"absolute"``, the paper's ImageNet run: 0.92 -> 0.90, ``soft_bound=0.02``).

    The bound lasts the whole run (it reaches 0 at the last update before the
    last step), from the paper: ``b_s`` "decays to zero, allowing the model to
    reach the target memory budget b by the end of training" (section 3.2),
    and Tables 5-7 put MEST's training FLOPs at 1.10x SET's, which the bound
    gives when held to the end (1.099x; MEST's scripts, which end it at epoch
    120 of 160, would give 1.074x). The mutation (drop and regrow at the
    prune rate) stops at ``update_end``, default 75% as MEST's scripts
    (epoch 120 of 160): the paper's polynomial rate kept to the end (about
    0.97 p at the last update) would leave the weights regrown then at zero
    under a learning rate near zero (about a quarter of the weights near zero
    at the end, while the masks count them active). After it, updates only
    prune, by drop score, to ``b + b_s(t)``."""

    name = "mest_r"
    default_update_end = 0.75

    def configure(self, soft_bound: float = 0.1, bound_power: float = schedules.POLYNOMIAL_POWER,
                  soft_bound_mode: str = "relative") -> None:
        self.soft_bound = float(soft_bound)
        self.bound_power = float(bound_power)
        self.soft_bound_mode = soft_bound_mode
        self._bound_last = schedules.last_update_step(self.total_steps, self.update_interval, 1.0)

    def method_options(self) -> dict[str, Any]:
        return {"soft_bound": self.soft_bound, "bound_power": self.bound_power, "soft_bound_mode": self.soft_bound_mode}

    def density_at(self, step: int) -> float:
        return schedules.mest_density(step, self.density, self.soft_bound, self._bound_last, self.bound_power,
                                      self.soft_bound_mode)

    def prune_to_density(self, step: int) -> float:
        return self.density if step <= self.last_update else self.density_at(step)

    def is_update(self, step: int) -> bool:
        return schedules.is_update_step(step, self.update_interval, self._bound_last)

    def update_end_step(self) -> int:
        return self._bound_last


class MESTG(GradientGrow, MEST):
    """``mest_g``: MEST with gradient regrowth (the paper's own variant)."""

    name = "mest_g"


class GraNet(SET):
    """``granet_r``: gradual magnitude pruning from ``initial_density`` to the
    target with the cubic schedule over the first ``prune_end`` of training,
    every ``prune_interval`` steps (default: ``update_interval``; the paper's
    Tiny-ImageNet run prunes every 500 steps with dT 100), plus zero-cost
    neuroregeneration every ``update_interval`` steps: drop ``rate`` of the
    remaining weights, regrow as many (at random). Pruning is per layer
    (GraNet's ``GraNet_uniform``; its default prunes globally), so the layer
    distribution holds at every density.

    Neuroregeneration runs to the end of training (the last update before
    the last step): the paper's GraNet "updates the mask throughout training"
    (section 3.2), as GraNet's code does. Its rate decays as GraNet's code
    does, ``cosine_floor`` (a cosine from the initial rate to 0.005 over the
    whole run), not by the paper's polynomial: footnote 3 is written for
    every method, but read for GraNet with regeneration to the end it keeps
    about ``0.97 p`` to the last update, whose regrown weights stay at zero
    at a learning rate near zero (about 9.5% of the weights dead at the
    paper's settings, while the masks count them active).
    ``prune_rate_decay="polynomial"`` gives that reading."""

    name = "granet_r"
    default_update_end = 1.0
    default_prune_rate_decay = "cosine_floor"

    def configure(self, initial_density: float | None = None, prune_end: float = 0.5,
                  prune_interval: int | None = None) -> None:
        self.prune_end = float(prune_end)
        self.initial_density = (
            schedules.granet_initial_density(self.density) if initial_density is None else float(initial_density)
        )
        self.prune_interval = self.update_interval if prune_interval is None else int(prune_interval)
        self._prune_last = schedules.last_update_step(self.total_steps, self.prune_interval, self.prune_end)

    def method_options(self) -> dict[str, Any]:
        return {"initial_density": self.initial_density, "prune_end": self.prune_end,
                "prune_interval": self.prune_interval}

    def density_at(self, step: int) -> float:
        pruned_at = min((step // self.prune_interval) * self.prune_interval, self._prune_last)
        return schedules.granet_density(pruned_at, self.initial_density, self.density, self._prune_last)

    def _regenerates(self, step: int) -> bool:
        return schedules.is_update_step(step, self.update_interval, self.last_update)

    def is_update(self, step: int) -> bool:
        return self._regenerates(step) or schedules.is_update_step(step, self.prune_interval, self._prune_last)

    def rate_at(self, step: int) -> float:
        return super().rate_at(step) if self._regenerates(step) else 0.0

    def update_end_step(self) -> int:
        return max(self.last_update, self._prune_last)


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

    def method_options(self) -> dict[str, Any]:
        return {"warmup": self.warmup, "phase": self.phase, "final": self.final}

    def _compressed(self, step: int) -> bool:
        return schedules.acdc_compressed(step, self.total_steps, self.warmup, self.phase, self.final)

    def density_at(self, step: int) -> float:
        return self.density if self._compressed(step) else 1.0

    def is_update(self, step: int) -> bool:
        return step < self.total_steps and self._compressed(step) != self._compressed(step - 1)

    def update_end_step(self) -> int:
        last = self.total_steps - round(self.final * self.total_steps)
        return last if 0 < last < self.total_steps and self.is_update(last) else 0

    @torch.no_grad()
    def update(self, step: int) -> None:
        counts = self.counts(self.density_at(step))
        changes = []
        for i, (name, p) in enumerate(zip(self.names, self.params)):
            new = np.zeros(p.numel(), dtype=bool)
            if counts[i] >= p.numel():
                new[:] = True
                count = p.numel()
            else:
                active = np.flatnonzero(_host(self.masks[name]))
                sel = masklib.select(self.drop_scores(p, active), counts[i], rng=self.rng)
                new[active[sel]] = True
                count = sel.size
            changes.append((torch.from_numpy(new).reshape(p.shape).to(p.device), count))
        self._commit(changes, False)
