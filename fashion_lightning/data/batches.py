"""An epoch's batches, in a seeded order, sharded for DDP, resumable in the middle of an epoch."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any

import torch
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from fashion_lightning.errors import ConfigError
from fashion_lightning.stop_signals import own_process_group

Batch = tuple[torch.Tensor, torch.Tensor]


def usable_cpus() -> int:
    """The CPU cores this process may run on: more reading workers than these only wait for a core."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class EpochBatches(ABC):
    """``(images, labels)`` batches in the order of ``sampler``, a torch ``DistributedSampler``: seeded
    by ``seed`` and the epoch (Lightning calls ``sampler.set_epoch`` every epoch); under DDP each rank
    takes its own disjoint slice of that epoch's permutation.

    It knows its place in the epoch: ``state_dict``/``load_state_dict``, Lightning's protocol for a
    resumable train iterable, so a run resumed from a checkpoint saved mid-epoch goes on with the
    epoch's remaining batches, in the same order. Lightning passes an iterable that is not a
    ``DataLoader`` through untouched: it injects no sampler of its own and warns about no workers.
    Subclasses say how a batch is cut (``_batches``).
    """

    batch_sampler = None  # Lightning reads ``batch_sampler`` wherever it finds a ``sampler``

    def __init__(self, batch_size: int, sampler: DistributedSampler) -> None:
        self.batch_size = batch_size
        self.sampler = sampler
        self.batches_done = 0  # in the current pass over the epoch
        self._resume: dict[str, int] | None = None

    @staticmethod
    def sampler_for_rank(
        size: int, rank: int = 0, world_size: int = 1, shuffle: bool = False, seed: int = 0
    ) -> DistributedSampler:
        """Shuffled for training, in order for evaluation."""
        if shuffle:
            # equal shares per rank (DDP needs the same number of steps everywhere), padded by
            # repeating a few samples when the size does not divide
            return DistributedSampler(
                range(size), num_replicas=world_size, rank=rank, shuffle=True, seed=seed
            )
        # every sample exactly once, so that metrics gathered over ranks count each image once
        return UnrepeatedDistributedSampler(range(size), num_replicas=world_size, rank=rank, shuffle=False)

    def batch_sizes(self) -> list[int]:
        """The number of images in each of an epoch's batches. In training (a shuffled sampler) a last
        batch of one image joins the one before: batch norm cannot train on one value per channel,
        which is what one image gives once a net's maps are 1x1."""
        full, rest = divmod(len(self.sampler), self.batch_size)
        sizes = [self.batch_size] * full + ([rest] if rest else [])
        if self.sampler.shuffle and rest == 1 and full:
            sizes[-2:] = [self.batch_size + 1]
        return sizes

    def __len__(self) -> int:
        return len(self.batch_sizes())

    def __iter__(self) -> Iterator[Batch]:
        order = torch.tensor(list(self.sampler), dtype=torch.long)
        resume, self._resume = self._resume, None
        epoch = getattr(self.sampler, "epoch", 0)
        skip = resume["batches_done"] if resume and resume["epoch"] == epoch else 0
        self.batches_done = skip
        # a checkpoint written before a last batch of one image, when that was a batch of its own, has
        # none left: the image joins no batch in that epoch
        sizes = self.batch_sizes()[skip:]
        for batch in self._batches(order[skip * self.batch_size :][: sum(sizes)], sizes):
            self.batches_done += 1
            yield batch

    @abstractmethod
    def _batches(self, order: torch.Tensor, sizes: list[int]) -> Iterator[Batch]:
        """The batches of these sample indices, in this order, of these sizes."""

    def state_dict(self) -> dict[str, Any]:
        return {
            "epoch": getattr(self.sampler, "epoch", 0),
            "batches_done": self.batches_done,
            "batches": len(self),
            "batch_size": self.batch_size,
            "ranks": getattr(self.sampler, "num_replicas", 1),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume: the next pass over epoch ``state['epoch']`` skips the batches it had done. They are
        that epoch's first images only in batches of the same size, cut from the same ranks' slices."""
        if not 0 < state["batches_done"] < state.get("batches", len(self)):
            return
        saved = (state.get("batch_size", self.batch_size), state.get("ranks", 1))
        ranks = getattr(self.sampler, "num_replicas", 1)
        if saved != (self.batch_size, ranks):
            raise ConfigError(
                f"the checkpoint was saved in the middle of an epoch, after {state['batches_done']} batches "
                f"of {saved[0]} images on {saved[1]} device(s); this run has batches of {self.batch_size} "
                f"on {ranks}, which would skip or repeat images of that epoch. Resume with "
                f"data.batch_size={saved[0]} on {saved[1]} device(s), or from a checkpoint saved at the "
                "end of an epoch"
            )
        self._resume = dict(state)


class DeviceBatches(EpochBatches):
    """Batches cut by one ``index_select`` each from a split that already lives on the training device:
    no worker processes, no per-sample Python, no host-to-device copies in the training loop."""

    def __init__(
        self, images: torch.Tensor, labels: torch.Tensor, batch_size: int, sampler: DistributedSampler
    ) -> None:
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        super().__init__(batch_size, sampler)
        self.images, self.labels = images, labels

    def _batches(self, order: torch.Tensor, sizes: list[int]) -> Iterator[Batch]:
        for index in order.to(self.images.device).split(sizes):
            yield self.images.index_select(0, index), self.labels.index_select(0, index)


class StreamedBatches(EpochBatches):
    """Batches read from disk by ``DataLoader`` worker processes, for a split too large for memory.
    ``dataset[i]`` is ``(uint8 image [C, H, W], label)``."""

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        sampler: DistributedSampler,
        num_workers: int,
        pin_memory: bool,
    ) -> None:
        super().__init__(batch_size, sampler)
        self.dataset, self.num_workers, self.pin_memory = dataset, num_workers, pin_memory

    def _batches(self, order: torch.Tensor, sizes: list[int]) -> Iterator[Batch]:
        # the workers' seeds from a generator of the epoch's own: a DataLoader draws them from torch's
        # global one otherwise, at every pass, and the training's random numbers (augmentation, dropout)
        # would differ from those of the same split held in memory (DeviceBatches)
        seed = getattr(self.sampler, "seed", 0) + getattr(self.sampler, "epoch", 0)
        loader = DataLoader(
            self.dataset,
            batch_sampler=[index.tolist() for index in order.split(sizes)],
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            worker_init_fn=own_process_group,
            generator=torch.Generator().manual_seed(seed),
        )
        yield from loader
