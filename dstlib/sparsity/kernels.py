"""Sparse kernels for masked ``nn.Linear`` layers: CSR matrix products instead of masked dense ones.

At 95-97% sparsity a masked dense layer does 20-30x the multiply-adds it
needs. :func:`attach` makes every masked Linear of a sparsifier compute

- the forward pass ``y = x W^T + b`` as ``(W_csr @ x^T)^T``,
- the input gradient ``dx = dy W`` as ``(W^T_csr @ dy^T)^T``,
- the weight gradient only at the active positions, ``dW[a, j] = sum_n
  dy[n, a] x[n, j]`` for ``M[a, j] = 1`` (``torch.sparse.sampled_addmm``),
  returned as a dense tensor that is 0 elsewhere,

with the CSR index built from the sparsifier's current mask (rebuilt after
each topology update) and the values read from the dense weight at every
call, so the model, its parameters, the optimiser and the sparsifier are
unchanged. The active weights follow the same trajectory as with masked dense
layers up to float rounding (the products sum in another order); inactive
weights are 0 either way. Inactive positions get a zero gradient instead of
the dense one, so methods that read the dense gradient (``rigl``, ``mest_g``,
``granet_g``, MEST's ``magnitude_gradient`` removal) cannot use these kernels;
their optimiser state there stays 0 instead of accumulating (it is reset when
a position is grown anyway).

Whether this is faster depends on the batch (``benchmarks/bench_cht.py``,
1 CPU thread, 95% sparsity): the products themselves are 5-10x faster, but
with the weights stored dense, gathering the active values, writing the dense
gradient, the optimiser step and the mask re-application still pass over
every weight. A training step of the 784-1568-1568-1568-10 and
784-1000-1000-1000-10 MLPs is 1.1-1.2x faster at batch 128 and 1.3-1.4x at
512, 0.8x at batch 8-32; the 784-300-100-10 MLP is slower at every batch; an
evaluation forward pass of 1000 images is 1.5-1.9x faster for the wide MLPs.
So the option is off by default; turn it on for wide MLPs at batch >= 128.

:func:`attach` follows a sparsifier's masks (training); :func:`attach_masks`
takes fixed masks, e.g. a stored run's, for evaluation. CPU only: on other
devices, and for non-float inputs, a layer falls back to the dense product of
its (masked) weights.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class _Structure:
    """CSR index of a (out, in) bool mask and of its transpose; ``values = weight.flatten()[flat]``."""

    def __init__(self, mask: torch.Tensor) -> None:
        out_f, in_f = mask.shape
        self.mask = mask
        self.shape = (out_f, in_f)
        rows, cols = mask.nonzero().unbind(1)  # row-major order: CSR order
        self.flat = rows * in_f + cols
        self.crow = torch.nn.functional.pad(torch.cumsum(mask.sum(1), 0), (1, 0))
        self.col = cols.contiguous()
        cols_t, rows_t = mask.T.nonzero().unbind(1)  # CSR order of the transpose
        self.crow_t = torch.nn.functional.pad(torch.cumsum(mask.sum(0), 0), (1, 0))
        self.col_t = rows_t.contiguous()
        self.perm_t = torch.searchsorted(self.flat, rows_t * in_f + cols_t)

    def csr(self, values: torch.Tensor) -> torch.Tensor:
        return _csr(self.crow, self.col, values, self.shape)

    def csr_t(self, values: torch.Tensor) -> torch.Tensor:
        return _csr(self.crow_t, self.col_t, values.index_select(0, self.perm_t), (self.shape[1], self.shape[0]))


def _csr(crow: torch.Tensor, col: torch.Tensor, values: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    with warnings.catch_warnings():  # torch's note that CSR support is in beta
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow, col, values, shape, check_invariants=False)


#: Rows of a batch per CSR product: the products run ~2x faster in chunks that stay in cache.
CHUNK = 128


def _csr_times_rows(w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``x @ w^T`` for a CSR ``w``, as ``(w @ x^T)^T`` over chunks of rows of ``x``."""
    if len(x) <= CHUNK:
        return (w @ x.T).T
    return torch.cat([(w @ x[s:s + CHUNK].T).T for s in range(0, len(x), CHUNK)])


class _CSRLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                st: _Structure) -> torch.Tensor:
        values = weight.detach().reshape(-1).index_select(0, st.flat)
        y = _csr_times_rows(st.csr(values), x)
        if bias is not None:
            y = y + bias
        ctx.save_for_backward(x, values)
        ctx.st = st
        ctx.has_bias = bias is not None
        return y

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor):
        x, values = ctx.saved_tensors
        st = ctx.st
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = _csr_times_rows(st.csr_t(values), grad)
        if ctx.needs_input_grad[1]:
            pattern = st.csr(values)
            active = None
            for s in range(0, len(x), CHUNK):
                part = torch.sparse.sampled_addmm(pattern, grad[s:s + CHUNK].T.contiguous(), x[s:s + CHUNK],
                                                  beta=0.0).values()
                active = part if active is None else active.add_(part)
            gw = grad.new_zeros(st.shape[0] * st.shape[1]).index_copy_(0, st.flat, active).view(st.shape)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            gb = grad.sum(0)
        return gx, gw, gb, None


def sparse_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                  structure: _Structure) -> torch.Tensor:
    """``F.linear(x, weight * mask, bias)`` through CSR kernels (``x``: (..., in), float, CPU)."""
    lead = x.shape[:-1]
    y = _CSRLinear.apply(x.reshape(-1, x.shape[-1]), weight, bias, structure)
    return y.reshape(*lead, weight.shape[0])


class _Forward:
    """The replacement ``forward`` of one masked Linear (a callable object, so it can be recognised);
    ``mask()`` gives the layer's current mask."""

    def __init__(self, module: nn.Linear, mask: Callable[[], torch.Tensor]) -> None:
        self.module, self.mask = module, mask
        self.structure: _Structure | None = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        m = self.module
        mask = self.mask()
        if x.device.type != "cpu" or not x.is_floating_point() or mask.device.type != "cpu":
            return F.linear(x, m.weight, m.bias)  # the weights are masked: the dense product is the same
        if self.structure is None or self.structure.mask is not mask:  # a topology update replaced it
            self.structure = _Structure(mask)
        return sparse_linear(x, m.weight, m.bias, self.structure)


def _install(model: nn.Module, names: list[str], mask_of: Callable[[str], Callable[[], torch.Tensor]]) -> None:
    modules = dict(model.named_modules())
    for name in names:
        module = modules.get(name.rsplit(".", 1)[0] if "." in name else "")
        if isinstance(module, nn.Linear) and name.endswith("weight"):
            module.forward = _Forward(module, mask_of(name))


def attach(sparsifier: Any) -> None:
    """Compute every masked ``nn.Linear`` of ``sparsifier`` with the CSR kernels (module docstring),
    following its masks through topology updates.

    Other masked layers (convolutions) keep their dense forward. Raises
    ValueError for a sparsifier that reads the dense gradient.
    """
    if getattr(sparsifier, "uses_gradient_grow", False) or getattr(sparsifier, "drop_criterion", "") == "magnitude_gradient":
        raise ValueError(f"sparse_kernels: method {sparsifier.name!r} reads the dense gradient, which these "
                         "kernels do not compute; use masked dense layers")
    _install(sparsifier.model, list(sparsifier.names), lambda name: lambda: sparsifier.masks[name])


def attach_masks(model: nn.Module, masks: Mapping[str, torch.Tensor]) -> None:
    """Compute the Linear layers named in ``masks`` ({weight name: bool mask}, e.g. a stored run's)
    with the CSR kernels, for a model whose weights are already masked (evaluation)."""
    params = dict(model.named_parameters())
    for name, mask in masks.items():
        if name not in params or tuple(params[name].shape) != tuple(mask.shape) or mask.dtype != torch.bool:
            raise ValueError(f"masks: {name!r} is not a weight of the model with a bool mask of its shape")
    _install(model, list(masks), lambda name: (lambda m=masks[name]: m))


def detach(model: nn.Module) -> None:
    """Give every Linear of ``model`` its dense forward back."""
    for module in model.modules():
        if isinstance(module.__dict__.get("forward"), _Forward):
            del module.forward
