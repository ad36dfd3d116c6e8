"""``torch.optim.SGD``'s step with a mask folded into it, for the masked weights of a sparsifier.

The sparsifier hides its masked weights from ``torch.optim.SGD``'s own step
(their ``.grad`` set aside for it) and steps them here: the update of
``torch.optim.SGD`` (momentum, dampening, Nesterov, weight decay, maximize),
with the gradient entering the momentum buffer through the float mask. The
momentum is then zero off the mask, so no weight off it ever moves and no
pass re-masking the weights is needed. With momentum (the paper's setting)
the weight decay goes into the buffer after the masked gradient,
``buf = m buf + (1 - d) (g M + wd w)`` (``w`` is zero off the mask), instead
of through a temporary ``g + wd w`` as ``torch.optim.SGD`` does: the same
update up to float rounding (an ulp per step), one pass over the weights
fewer, so the masked step costs no more than SGD's own.
"""
from __future__ import annotations

import torch


def masked_sgd(group: dict, params: list[torch.Tensor], masks: list[torch.Tensor], state) -> None:
    """One SGD step of ``params`` (all with a ``.grad``) with ``group``'s hyperparameters;
    ``masks``: float masks (1 on, 0 off) shaped like them; ``state``: the optimiser's state.
    Call under ``torch.no_grad()``. Momentum buffers are created masked."""
    lr, wd, mom = group["lr"], group["weight_decay"], group["momentum"]
    damp, nesterov, maximize = group["dampening"], group["nesterov"], group["maximize"]
    if params[0].device.type != "cpu":
        _masked_sgd_foreach(params, masks, state, lr, wd, mom, damp, nesterov, maximize)
        return
    # one tensor at a time on the CPU, as torch.optim.SGD there (its foreach kernels are slower)
    for p, f in zip(params, masks):
        g = p.grad if not maximize else -p.grad
        if mom == 0 or nesterov:  # the rarer settings: SGD's own temporary g + wd w
            d = g.add(p, alpha=wd) if wd != 0 else g
            if mom != 0:
                buf = _buffer(state, p, d, f, mom, damp, 0.0)
                d = d.add(buf, alpha=mom)
            p.addcmul_(d, f, value=-lr)
            continue
        buf = _buffer(state, p, g, f, mom, damp, wd)
        p.add_(buf, alpha=-lr)


def _buffer(state, p: torch.Tensor, g: torch.Tensor, f: torch.Tensor, mom: float, damp: float,
            wd: float) -> torch.Tensor:
    """The momentum buffer after this step: ``m buf + (1 - d) (g M + wd w)``; at the first step
    ``g M + wd w`` (SGD's first buffer is its gradient, undamped)."""
    buf = state[p].get("momentum_buffer")
    if buf is None:
        buf = state[p]["momentum_buffer"] = torch.mul(g, f)
        if wd != 0:
            buf.add_(p, alpha=wd)
        return buf
    buf.mul_(mom).addcmul_(g, f, value=1 - damp)
    if wd != 0:
        buf.add_(p, alpha=wd * (1 - damp))
    return buf


def _masked_sgd_foreach(params, masks, state, lr, wd, mom, damp, nesterov, maximize) -> None:
    """:func:`masked_sgd` with ``foreach`` kernels (fewer launches on a GPU), the same arithmetic."""
    grads = [p.grad for p in params]
    if maximize:
        grads = torch._foreach_neg(grads)
    if mom == 0 or nesterov:
        d = torch._foreach_add(grads, params, alpha=wd) if wd != 0 else grads
        if mom != 0:
            d = torch._foreach_add(d, [_buffer(state, p, x, f, mom, damp, 0.0) for p, x, f in zip(params, d, masks)],
                                   alpha=mom)
        torch._foreach_addcmul_(params, d, masks, value=-lr)
        return
    new, old, old_g, old_m, old_p, bufs = [], [], [], [], [], []
    for p, g, f in zip(params, grads, masks):
        buf = state[p].get("momentum_buffer")
        if buf is None:
            bufs.append(_buffer(state, p, g, f, mom, damp, wd))
        else:
            old.append(buf)
            old_g.append(g)
            old_m.append(f)
            old_p.append(p)
            bufs.append(buf)
    if old:
        torch._foreach_mul_(old, mom)
        torch._foreach_addcmul_(old, old_g, old_m, value=1 - damp)
        if wd != 0:
            torch._foreach_add_(old, old_p, alpha=wd * (1 - damp))
    torch._foreach_add_(params, bufs, alpha=-lr)
