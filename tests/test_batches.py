"""An epoch's batches: seeded, reproducible order; disjoint DDP shards; evaluation in order; resumable
mid-epoch; the same batches from memory and streamed from a dataset."""

from __future__ import annotations

import torch

from fashion_lightning.data import DeviceBatches, EpochBatches, StreamedBatches


def batches_for_rank(
    images, labels, batch_size, rank=0, world_size=1, shuffle=False, seed=0
) -> DeviceBatches:
    sampler = EpochBatches.sampler_for_rank(len(labels), rank, world_size, shuffle, seed)
    return DeviceBatches(images, labels, batch_size, sampler)


def split(n: int = 103):
    images = torch.arange(n, dtype=torch.uint8).repeat_interleave(784).reshape(n, 1, 28, 28)
    return images, torch.arange(n)


def epoch_order(batches: DeviceBatches, epoch: int) -> list[int]:
    batches.sampler.set_epoch(epoch)  # what Lightning does at the start of every epoch
    return torch.cat([labels for _, labels in batches]).tolist()


def test_batches_keep_images_with_their_labels_and_cover_the_split_once():
    images, labels = split()
    batches = batches_for_rank(images, labels, batch_size=20, shuffle=True, seed=7)
    seen = []
    for batch_images, batch_labels in batches:
        assert batch_images.dtype == torch.uint8 and batch_images.shape[1:] == (1, 28, 28)
        assert torch.equal(batch_images[:, 0, 0, 0].long(), batch_labels)
        seen += batch_labels.tolist()
    assert sorted(seen) == list(range(103)) and seen != sorted(seen)
    assert len(batches) == 6 and [len(b[1]) for b in batches] == [20, 20, 20, 20, 20, 3]


def test_a_training_epoch_never_ends_in_a_batch_of_one_image():
    """Batch norm cannot train on one image once a net's maps are 1x1: it joins the batch before."""
    images, labels = split(101)
    training = batches_for_rank(images, labels, batch_size=20, shuffle=True)
    assert [len(b[1]) for b in training] == training.batch_sizes() == [20, 20, 20, 20, 21]
    assert len(training) == 5 and sorted(torch.cat([b[1] for b in training]).tolist()) == list(range(101))
    evaluation = batches_for_rank(images, labels, batch_size=20)
    assert [len(b[1]) for b in evaluation] == [20, 20, 20, 20, 20, 1] and len(evaluation) == 6
    assert [len(b[1]) for b in batches_for_rank(images[:1], labels[:1], 20, shuffle=True)] == [1]


def test_shuffling_is_seeded_reproducible_and_new_every_epoch():
    images, labels = split()

    def orders(seed):
        batches = batches_for_rank(images, labels, batch_size=16, shuffle=True, seed=seed)
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
            batches_for_rank(images, labels, 8, rank, world_size, shuffle=True, seed=3)
            for rank in range(world_size)
        ]
        for epoch in range(3):
            shards = [epoch_order(batches, epoch) for batches in ranks]
            assert sorted(sum(shards, [])) == list(range(100))
            assert len({len(shard) for shard in shards}) == 1, "equal steps on every rank"


def test_evaluation_shards_keep_order_and_count_each_sample_once():
    images, labels = split(103)
    shards = [batches_for_rank(images, labels, 10, rank, 2) for rank in range(2)]
    orders = [torch.cat([lab for _, lab in shard]).tolist() for shard in shards]
    assert orders[0] == list(range(0, 103, 2)) and orders[1] == list(range(1, 103, 2))
    single = batches_for_rank(images, labels, 10)
    assert torch.cat([lab for _, lab in single]).tolist() == list(range(103))


def test_a_pass_resumed_from_its_state_goes_on_with_the_remaining_batches():
    images, labels = split()
    batches = batches_for_rank(images, labels, batch_size=10, shuffle=True, seed=5)
    batches.sampler.set_epoch(2)
    whole = [b[1].tolist() for b in batches]
    seen = iter(batches)
    for _ in range(4):
        next(seen)
    state = batches.state_dict()
    assert state == {"epoch": 2, "batches_done": 4, "batches": 11, "batch_size": 10, "ranks": 1}

    resumed = batches_for_rank(images, labels, batch_size=10, shuffle=True, seed=5)  # a new process
    resumed.load_state_dict(state)
    resumed.sampler.set_epoch(2)
    assert [b[1].tolist() for b in resumed] == whole[4:]
    assert [b[1].tolist() for b in resumed] == whole, "only the first pass after resuming skips"


def test_a_state_from_an_ended_or_other_epoch_skips_nothing():
    images, labels = split()
    batches = batches_for_rank(images, labels, batch_size=10, shuffle=True, seed=5)
    batches.load_state_dict({"epoch": 0, "batches_done": len(batches)})  # saved at the epoch's end
    assert len(list(batches)) == len(batches)
    batches.load_state_dict({"epoch": 0, "batches_done": 3})
    batches.sampler.set_epoch(1)  # resumed into the next epoch
    assert len(list(batches)) == len(batches)
    # written before a last batch of one image, when it was a batch of its own: nothing is left of the
    # epoch as batches are cut now, and the next starts whole
    images, labels = split(101)
    batches = batches_for_rank(images, labels, batch_size=20, shuffle=True)
    batches.load_state_dict({"epoch": 0, "batches_done": 5, "batches": 6, "batch_size": 20, "ranks": 1})
    assert list(batches) == []
    batches.sampler.set_epoch(1)
    assert [len(b[1]) for b in batches] == [20, 20, 20, 20, 21]


def test_streamed_batches_equal_the_in_memory_ones():
    images, labels = split(97)  # 6 batches of 16, and one image
    dataset = torch.utils.data.TensorDataset(images, labels)
    for shuffle in (True, False):
        sampler = EpochBatches.sampler_for_rank(len(labels), shuffle=shuffle, seed=3)
        streamed = StreamedBatches(dataset, 16, sampler, num_workers=0, pin_memory=False)
        in_memory = batches_for_rank(images, labels, 16, shuffle=shuffle, seed=3)
        pairs = list(zip(streamed, in_memory, strict=True))
        assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in pairs)
