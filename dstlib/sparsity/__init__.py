"""Dynamic sparse training for any PyTorch model, optimiser and loop.

Usage::

    sp = dstlib.sparsity.create("rigl", model, optimizer=opt, total_steps=T,
                                sparsity=0.5, distribution="erk")
    for x, y in loader:
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()
        sp.step()          # masks held; every dT-th call a topology update

``sp.masks`` ({parameter name: bool tensor}, names as in the given model's
``named_parameters()``), ``sp.densities()`` ({name: density} of the masked
weights plus ``"overall"``), ``sp.log()`` (history numbers, resets its
accumulators; ``updates``: topology updates so far, ``update_end_step``: the
step of the last one scheduled), ``sp.state_dict()`` / ``sp.load_state_dict()``
(masks, step, schedule, RNG: a resumed run continues exactly, and a resume
with another schedule is refused).

Methods (``METHODS``; names as in the paper, section 3):

- ``dense``: no masks.
- ``static``: random mask (exact count per layer), never updated.
- ``set``: drop the smallest |w|, regrow uniformly at random among inactive weights.
- ``rigl``: drop the smallest |w|, regrow the inactive weights with the largest
  |dense gradient| (the ``.grad`` of the step just taken: no extra pass).
- ``mest_r`` / ``mest_g``: soft memory bound; start at ``b + b_s``, prune to
  ``b`` minus the prune-rate mutation, regrow to ``b + b_s(t)``; ``b_s``
  decays polynomially (exponent ``bound_power``, default the paper's 0.01)
  to 0 at the last update.
- ``granet_r`` / ``granet_g``: cubic gradual magnitude pruning from
  ``initial_density`` to the target over the first ``prune_end`` of training,
  plus neuroregeneration (drop ``rate`` of the remaining, regrow as many).
- ``acdc``: dense warm-up, alternating compressed (top-|w| at the target) /
  decompressed (all weights) phases, final compressed phase.
- ``chts``: Cannistraci-Hebb soft training (paper section 6.1, MLPs only):
  regrowth sampled in proportion to the CH3-L3 link-prediction score of each
  layer's bipartite network, dead-neuron link removal, and a random, CSTI or
  bipartite small-world initial topology (``dstlib.sparsity.cht``).

Removal is by |w| for every method (paper section 3); ``drop_criterion=
"magnitude_gradient"`` gives MEST's |w| + lambda |g|. Per layer, an update keeps
``c - floor(rate * c)`` weights (``c`` the count of the density pruned to) and
regrows up to the count of the method's density at that step, so the active
count is constant for static/SET/RigL, follows the bound for MEST, the cubic
schedule for GraNet and the phase for AC/DC. Ties between equal scores are
broken by a random order from the sparsifier's seeded generator.

Per-method defaults (``update_end=None``, ``prune_rate_decay=None``), the
paper first, the method's own code where the paper is silent:

====================  ==========  ============  ===========================================
method                mutation    rate decay    source
                      until
====================  ==========  ============  ===========================================
set, rigl             75%         polynomial    rate: footnote 3; end: the paper gives
                                                none, so RigL's code (ImageNet end 25k of
                                                32k steps, rigl-torch's T_end = 0.75)
mest_r, mest_g        75%, bound  polynomial    bound: section 3.2 (b_s reaches 0 "by the
                      to the end                end of training"), Tables 5-7 (1.10x SET's
                                                FLOPs: held to the end); mutation: MEST's
                                                scripts (epoch 120 of 160), after which
                                                updates only prune (``MEST``)
granet_r, granet_g    the end     cosine_floor  end: section 3.2 ("throughout training"),
                                                GraNet's code; rate: GraNet's code (cosine
                                                to 0.005), since the polynomial kept to the
                                                end leaves ~9.5% dead weights (``GraNet``)
acdc                  phases      -             AC/DC's ImageNet config
chts                  75%         polynomial    rate: footnote 3; end: the CHT code's T_end
                                                with its CHTs schedule (``cht``)
====================  ==========  ============  ===========================================

"The end" is the last multiple of dT before the last step: no update ever
follows the last optimiser step (its regrown weights would never train).

Masked weights stay exactly zero. With ``torch.optim.SGD`` the mask is folded
into the optimiser's momentum pass (``optim``: SGD's update up to float
rounding, momentum zero off the mask, no extra pass over the weights); with
any other optimiser the masks are re-applied after each step.
Newly grown weights start at zero and their optimiser state (every state
tensor shaped like the weight: SGD momentum, Adam moments) is zeroed there,
as is the state of dropped weights (RigL's code zeroes the momentum of new
connections; GraNet masks it every step). A just-dropped weight regrown in
the same update keeps its value and state (RigL). Pass ``optimizer=`` for
this; without it only the weights are masked.

A step the optimiser skipped (fp16 ``GradScaler`` with inf/NaN gradients)
changes nothing; a topology update due then is deferred to the next step
taken. With a torch optimiser this is seen through its step hooks; other
loops call ``sp.step(skipped=True)``.

Options (defaults; source):

- ``sparsity`` 0.5: fraction of zeros in the sparse layers.
- ``distribution`` "uniform" (paper Table 4, CIFAR) or "erk" (RigL's ERK;
  Table 4 ImageNet/MLP); ``erk_power_scale`` 1.0 (RigL's default).
- Sparse layers: every conv/linear weight and every ``nn.MultiheadAttention``
  input projection (``in_proj_weight``; its ``out_proj`` is a Linear) except
  the final classifier (the model's head, else the last Linear in module
  order, or a final 1x1 conv), which stays dense as the paper's parameter
  counts for VGG16 and ResNet34 imply (Tables 5-6); biases and norms are
  dense. ``sparse_classifier`` True makes it sparse: Table 8's ResNet50
  (ImageNet, 23.00 M of 25.56 M at density 0.9) needs it, as in RigL's
  ImageNet code. ``dense_layers`` (parameter names), ``dense_patterns``
  (fnmatch patterns over parameter names, e.g. ``"*.se.*"``), ``dense_types``
  (kinds "depthwise", "squeeze_excite", or module class names, e.g.
  EfficientNet's depthwise and squeeze-excite convolutions), ``dense_first_layer``
  False. Models wrapped by DDP, DataParallel or ``torch.compile`` are
  inspected through the wrapper.
- ``update_interval`` 100 (dT in optimiser steps; RigL/GraNet default; the
  paper uses 500 for CIFAR, 100 Tiny-ImageNet, 2000 ImageNet, 300 MLP: set it
  from the spec).
- ``prune_rate`` 0.1 (paper Table 4, every setting); ``prune_rate_decay``
  None (the method's, above), "polynomial" ``p (1 - t/T)^0.01`` (Table 4
  note 3), "cosine" (RigL, to 0 at the last update), "cosine_floor"
  (GraNet, to 0.005 over all of training) or "constant"; ``update_end`` None
  (above).
- ``drop_criterion`` "magnitude"; ``drop_lambda`` 1.0 for "magnitude_gradient"
  (MEST's code defaults lambda to 0, i.e. magnitude).
- MEST: ``soft_bound`` 0.1 with ``soft_bound_mode`` "relative" (a fraction of
  the target density: A.3.2, CIFAR and Tiny-ImageNet) or "absolute" (a
  density: the paper's ImageNet 0.92 -> 0.90 is ``soft_bound=0.02``);
  ``bound_power`` 0.01.
- GraNet: ``initial_density`` None = 0.8 if the target density is below 0.8,
  else ``target + (1 - target) / 2`` (0.95 for 0.9; A.3.2); ``prune_end`` 0.5
  (A.3.2: half of training); ``prune_interval`` None = ``update_interval``
  (A.3.2: Tiny-ImageNet prunes every 500 steps with dT 100); pruning happens
  at multiples of it and ends at the last one before ``prune_end``, so the
  target is reached.
- AC/DC: ``warmup`` 0.1, ``phase`` 0.05, ``final`` 0.15 (fractions; the
  shape of AC/DC's ImageNet config: 10 dense epochs, 5-epoch phases, final 15
  of 100 compressed; the paper is silent).
- CHTs (``cht`` module docstring for formulas and sources):
  ``topology_init`` "random" | "csti" | "bsw"; ``bsw_beta`` 0.25;
  ``cht_score`` "ch3_l3p" (path-based) | "ch3_l3n" (node-based
  approximation); ``cht_removal`` "magnitude" | "magnitude_soft";
  ``chain_removal`` True; ``sparse_kernels`` False (CSR products for the
  masked layers, ``dstlib.sparsity.kernels``); ``features``: the training
  inputs (n, ...), needed for ``topology_init="csti"`` (a training loop
  passes its training images).
- ``seed`` 0: the sparsifier's own generators (numpy: masks, random regrowth, ties;
  a torch.Generator: CHTs's draws).

Under ``torch.distributed`` every rank takes rank 0's masks at creation and
after each update (one broadcast per masked weight), so masks are identical.
"""
from __future__ import annotations

import numbers
from typing import Any

import torch
from torch import nn

from dstlib.sparsity import cht, distributions, kernels, masks, schedules
from dstlib.sparsity.cht import CHTs
from dstlib.sparsity.methods import (
    ACDC,
    MEST,
    MESTG,
    SET,
    Dense,
    GraNet,
    GraNetG,
    RigL,
    Sparsifier,
    Static,
)

REGISTRY: dict[str, type] = {
    "dense": Dense,
    "static": Static,
    "set": SET,
    "rigl": RigL,
    "mest_r": MEST,
    "mest_g": MESTG,
    "granet_r": GraNet,
    "granet_g": GraNetG,
    "acdc": ACDC,
    "chts": CHTs,
}
METHODS: tuple[str, ...] = tuple(REGISTRY)

_METHOD_OPTIONS = {
    "mest_r": ("soft_bound", "bound_power", "soft_bound_mode"),
    "mest_g": ("soft_bound", "bound_power", "soft_bound_mode"),
    "granet_r": ("initial_density", "prune_end", "prune_interval"),
    "granet_g": ("initial_density", "prune_end", "prune_interval"),
    "acdc": ("warmup", "phase", "final"),
    "chts": ("topology_init", "bsw_beta", "cht_score", "cht_removal", "chain_removal", "sparse_kernels",
             "features"),
}
_ALL_METHOD_OPTIONS = tuple(dict.fromkeys(o for opts in _METHOD_OPTIONS.values() for o in opts))
OPTIONS = (
    "sparsity", "distribution", "erk_power_scale", "dense_layers", "dense_first_layer",
    "sparse_classifier", "dense_patterns", "dense_types", "update_interval", "prune_rate",
    "prune_rate_decay", "update_end", "drop_criterion", "drop_lambda", *_ALL_METHOD_OPTIONS, "seed",
)


def _real(name: str, value: Any, lo: float, hi: float, lo_open: bool, hi_open: bool, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if ok:
        v = float(value)
        ok = (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)
    if not ok:
        rng = f"{'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
        raise ValueError(f"{name}: {value!r} is not a number in {rng}{' or None' if allow_none else ''}")


def _choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name}: {value!r} is not one of {', '.join(choices)}")


def _validate(method: str, model: Any, optimizer: Any, total_steps: Any, opts: dict[str, Any]) -> None:
    _choice("method", method, METHODS)
    unknown = sorted(set(opts) - set(OPTIONS))
    if unknown:
        raise ValueError(f"create: unknown option {unknown[0]!r}; valid: {', '.join(OPTIONS)}")
    if not isinstance(model, nn.Module):
        raise ValueError(f"model: {type(model).__name__} is not a torch.nn.Module")
    if optimizer is not None and not hasattr(optimizer, "state"):
        raise ValueError(f"optimizer: {type(optimizer).__name__} is not a torch optimizer (no .state) or None")
    if method != "dense" and (
        not isinstance(total_steps, numbers.Integral) or isinstance(total_steps, bool) or total_steps < 1
    ):
        raise ValueError(f"total_steps: {total_steps!r} is not an int >= 1")
    o = opts.get
    _real("sparsity", o("sparsity", 0.5), 0.0, 1.0, False, True)
    _choice("distribution", o("distribution", "uniform"), distributions.DISTRIBUTIONS)
    _real("erk_power_scale", o("erk_power_scale", 1.0), 0.0, float("inf"), True, True)
    for name, what in (("dense_layers", "parameter names"), ("dense_patterns", "name patterns"),
                       ("dense_types", "layer kinds or module class names")):
        v = o(name, ())
        if isinstance(v, str) or not all(isinstance(n, str) and n for n in v):
            raise ValueError(f"{name}: {v!r} is not a tuple of {what}")
    for flag in ("dense_first_layer", "sparse_classifier"):
        if not isinstance(o(flag, False), bool):
            raise ValueError(f"{flag}: {o(flag)!r} is not True or False")
    ui = o("update_interval", 100)
    if not isinstance(ui, numbers.Integral) or isinstance(ui, bool) or ui < 1:
        raise ValueError(f"update_interval: {ui!r} is not an int >= 1")
    _real("prune_rate", o("prune_rate", 0.1), 0.0, 1.0, True, True)
    if o("prune_rate_decay") is not None:
        _choice("prune_rate_decay", o("prune_rate_decay"), schedules.PRUNE_RATE_DECAYS)
    _real("update_end", o("update_end"), 0.0, 1.0, True, False, allow_none=True)
    _choice("drop_criterion", o("drop_criterion", "magnitude"), ("magnitude", "magnitude_gradient"))
    _real("drop_lambda", o("drop_lambda", 1.0), 0.0, float("inf"), False, True)
    _real("soft_bound", o("soft_bound", 0.1), 0.0, float("inf"), False, True)
    _real("bound_power", o("bound_power", 0.01), 0.0, float("inf"), True, True)
    _choice("soft_bound_mode", o("soft_bound_mode", "relative"), schedules.SOFT_BOUND_MODES)
    pi = o("prune_interval")
    if pi is not None and (not isinstance(pi, numbers.Integral) or isinstance(pi, bool) or pi < 1):
        raise ValueError(f"prune_interval: {pi!r} is not an int >= 1 or None")
    _real("initial_density", o("initial_density"), 0.0, 1.0, True, False, allow_none=True)
    if o("initial_density") is not None and o("initial_density") < 1.0 - o("sparsity", 0.5):
        raise ValueError(
            f"initial_density: {o('initial_density')!r} is below the target density {1.0 - o('sparsity', 0.5)!r}"
        )
    _real("prune_end", o("prune_end", 0.5), 0.0, 1.0, True, False)
    _real("warmup", o("warmup", 0.1), 0.0, 1.0, False, True)
    _real("phase", o("phase", 0.05), 0.0, 1.0, True, True)
    _real("final", o("final", 0.15), 0.0, 1.0, True, True)
    if o("warmup", 0.1) + o("final", 0.15) > 1.0:
        raise ValueError(f"warmup + final: {o('warmup', 0.1) + o('final', 0.15)!r} exceeds 1")
    _choice("topology_init", o("topology_init", "random"), cht.TOPOLOGY_INITS)
    _real("bsw_beta", o("bsw_beta", 0.25), 0.0, 1.0, False, False)
    _choice("cht_score", o("cht_score", "ch3_l3p"), cht.CHT_SCORES)
    _choice("cht_removal", o("cht_removal", "magnitude"), cht.CHT_REMOVALS)
    for flag in ("chain_removal", "sparse_kernels"):
        if not isinstance(o(flag, False), bool):
            raise ValueError(f"{flag}: {o(flag)!r} is not True or False")
    if method == "chts" and o("topology_init") == "csti" and not torch.is_tensor(o("features")):
        raise ValueError(f"features: {type(o('features')).__name__} is not a tensor of training inputs "
                         "(n, ...); topology_init='csti' needs them")
    seed = o("seed", 0)
    if not isinstance(seed, numbers.Integral) or isinstance(seed, bool):
        raise ValueError(f"seed: {seed!r} is not an int")


def create(method: str, model: nn.Module, *, optimizer: Any = None, total_steps: int | None = None, **options: Any):
    """Build the sparsifier ``method`` (one of ``METHODS``) for ``model``.

    Call after the optimiser exists (pass it as ``optimizer=`` so regrown
    weights get their state reset) and before the first step. Every option of
    the module docstring is accepted by every method; a method ignores the
    ones it does not use. Bad values raise ValueError before any work.
    """
    _validate(method, model, optimizer, total_steps, options)
    cls = REGISTRY[method]
    if cls is Dense:
        return Dense(model, optimizer=optimizer, total_steps=total_steps)
    own = _METHOD_OPTIONS.get(method, ())
    method_opts = {k: options.pop(k) for k in list(options) if k in own}
    for k in _ALL_METHOD_OPTIONS:
        options.pop(k, None)
    for k in ("dense_layers", "dense_patterns", "dense_types"):
        if k in options:
            options[k] = tuple(options[k])
    return cls(model, optimizer=optimizer, total_steps=int(total_steps), **options, **method_opts)


__all__ = [
    "METHODS", "OPTIONS", "REGISTRY", "create", "Sparsifier", "Dense", "Static", "SET", "RigL",
    "MEST", "MESTG", "GraNet", "GraNetG", "ACDC", "CHTs", "cht", "distributions", "kernels", "masks", "schedules",
]
