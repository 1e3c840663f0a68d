"""Batches sliced from tensors that already live on the training device."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DistributedSampler


class DeviceBatches:
    """An iterable of ``(images, labels)`` batches cut by one indexing operation each.

    The whole split sits on the training device (moved there once), so an epoch costs one
    permutation and one ``index_select`` per batch: no worker processes, no per-sample Python, no
    host-to-device copies. The order comes from ``sampler``, a torch ``DistributedSampler``: seeded
    by ``seed`` and the epoch (Lightning calls ``sampler.set_epoch`` every epoch), and under DDP each
    rank takes its own disjoint slice of that epoch's permutation.

    Lightning passes any iterable that is not a ``DataLoader`` through untouched, so it neither
    injects a sampler of its own nor warns about worker counts.
    """

    batch_sampler = None  # Lightning reads ``batch_sampler`` wherever it finds a ``sampler``

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int,
        sampler: DistributedSampler,
    ) -> None:
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.images, self.labels = images, labels
        self.batch_size = batch_size
        self.sampler = sampler
        # how many of the epoch's batches are done already (resuming mid-epoch), asked when the epoch's
        # first batch is, so that it can come from a training loop restored after this object was made
        self.batches_done: Callable[[], int] = lambda: 0

    @classmethod
    def for_rank(
        cls,
        images: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int,
        rank: int = 0,
        world_size: int = 1,
        shuffle: bool = False,
        seed: int = 0,
    ) -> DeviceBatches:
        """The batches of one rank: shuffled for training, in order for evaluation."""
        indices = range(len(labels))
        if shuffle:
            # equal shares per rank (DDP needs the same number of steps everywhere), padded by
            # repeating a few samples when the size does not divide
            sampler = DistributedSampler(indices, num_replicas=world_size, rank=rank, shuffle=True, seed=seed)
        else:
            # every sample exactly once, so that metrics gathered over ranks count each image once
            sampler = UnrepeatedDistributedSampler(indices, num_replicas=world_size, rank=rank, shuffle=False)
        return cls(images, labels, batch_size, sampler)

    def __len__(self) -> int:
        return math.ceil(len(self.sampler) / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = torch.tensor(list(self.sampler), dtype=torch.long, device=self.images.device)
        for start in range(self.batches_done() * self.batch_size, len(order), self.batch_size):
            index = order[start : start + self.batch_size]
            yield self.images.index_select(0, index), self.labels.index_select(0, index)
