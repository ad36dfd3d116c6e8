"""The model inside the wrappers that training at scale puts around it."""
from __future__ import annotations

from torch import nn


def unwrap(model: nn.Module) -> tuple[nn.Module, str]:
    """The model inside DDP / DataParallel (``.module``) and ``torch.compile``
    (``._orig_mod``) wrappers, any nesting, and the prefix its parameter names
    carry in the wrapper's ``named_parameters()``."""
    prefix = ""
    while True:
        if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            model, prefix = model.module, prefix + "module."
        elif isinstance(getattr(model, "_orig_mod", None), nn.Module):
            model, prefix = model._orig_mod, prefix + "_orig_mod."
        else:
            return model, prefix
