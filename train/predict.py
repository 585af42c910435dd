"""The one batched prediction loop of every pass over a split: evaluation, validation during training, the cached
teacher logits and the teacher's view banks."""

from __future__ import annotations

from typing import Callable, Iterable

import numpy as np
import torch
from tqdm.auto import tqdm

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # (images, labels, row indices), as TorchImageDataset gives


@torch.no_grad()
def predict(forward: Callable[[torch.Tensor], torch.Tensor], loader: Iterable[Batch], desc: str,
            progress: bool = True, gather: Callable | None = None,
            also: Callable[[torch.Tensor], None] | None = None) -> tuple[np.ndarray, torch.Tensor]:
    """(labels, outputs): ``forward`` of every batch of ``loader``, stacked on the CPU in loader order.

    ``gather`` (accelerate's ``gather_for_metrics``) collects (outputs, labels) from every process; ``also`` sees
    each batch's inputs (a view bank keeps them)."""
    labels, outputs = [], []
    for x, y, _ in tqdm(loader, desc=desc, disable=not progress, leave=False):
        out = forward(x)
        if gather is not None:
            out, y = gather((out, y))
        if also is not None:
            also(x)
        outputs.append(out.cpu())
        labels.append(y.cpu())
    return torch.cat(labels).numpy().astype(int), torch.cat(outputs)
