"""Device-resident batches: seeded, reproducible order; disjoint DDP shards; evaluation in order."""

from __future__ import annotations

import torch

from fashion_lightning.data import DeviceBatches


def split(n: int = 103):
    images = torch.arange(n, dtype=torch.uint8).repeat_interleave(784).reshape(n, 1, 28, 28)
    return images, torch.arange(n)


def epoch_order(batches: DeviceBatches, epoch: int) -> list[int]:
    batches.sampler.set_epoch(epoch)  # what Lightning does at the start of every epoch
    return torch.cat([labels for _, labels in batches]).tolist()


def test_batches_keep_images_with_their_labels_and_cover_the_split_once():
    images, labels = split()
    batches = DeviceBatches.for_rank(images, labels, batch_size=20, shuffle=True, seed=7)
    seen = []
    for batch_images, batch_labels in batches:
        assert batch_images.dtype == torch.uint8 and batch_images.shape[1:] == (1, 28, 28)
        assert torch.equal(batch_images[:, 0, 0, 0].long(), batch_labels)
        seen += batch_labels.tolist()
    assert sorted(seen) == list(range(103)) and seen != sorted(seen)
    assert len(batches) == 6 and [len(b[1]) for b in batches] == [20, 20, 20, 20, 20, 3]


def test_shuffling_is_seeded_reproducible_and_new_every_epoch():
    images, labels = split()

    def orders(seed):
        batches = DeviceBatches.for_rank(images, labels, batch_size=16, shuffle=True, seed=seed)
        return [epoch_order(batches, epoch) for epoch in range(3)]

    first = orders(seed=1)
    assert first == orders(seed=1), "same seed, same order, in a fresh loader"
    assert first[0] != first[1] != first[2], "each epoch has its own order"
    assert first != orders(seed=2)
    torch.manual_seed(123)  # the global RNG (dropout, augmentation) does not move the order
    assert first == orders(seed=1)


def test_ddp_shards_give_each_sample_to_exactly_one_rank_every_epoch():
    images, labels = split(100)
    for world_size in (2, 4):
        ranks = [
            DeviceBatches.for_rank(images, labels, 8, rank, world_size, shuffle=True, seed=3)
            for rank in range(world_size)
        ]
        for epoch in range(3):
            shards = [epoch_order(batches, epoch) for batches in ranks]
            assert sorted(sum(shards, [])) == list(range(100))
            assert len({len(shard) for shard in shards}) == 1, "equal steps on every rank"


def test_evaluation_shards_keep_order_and_count_each_sample_once():
    images, labels = split(103)
    shards = [DeviceBatches.for_rank(images, labels, 10, rank, 2) for rank in range(2)]
    orders = [torch.cat([lab for _, lab in shard]).tolist() for shard in shards]
    assert orders[0] == list(range(0, 103, 2)) and orders[1] == list(range(1, 103, 2))
    single = DeviceBatches.for_rank(images, labels, 10)
    assert torch.cat([lab for _, lab in single]).tolist() == list(range(103))
