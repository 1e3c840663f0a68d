"""The data module and the MNIST family's sources, on tiny files the tests write."""

from __future__ import annotations

import functools
import hashlib
import http.server
import os
import re
import threading

import numpy as np
import pytest
import torch
from lightning.pytorch import Trainer
from lightning.pytorch.trainer.states import TrainerFn
from tiny_idx import FILES, LABEL_MAGIC, idx_bytes, write_tiny_idx
from torchvision import datasets

from fashion_lightning.data import (
    KMNIST,
    MNIST,
    DataError,
    FashionMNIST,
    ImageDataModule,
    ImageSource,
    LabelledImages,
)
from fashion_lightning.data.fashion_mnist_copies import ENV_VAR
from fashion_lightning.errors import ConfigError


def make_datamodule(root, source=FashionMNIST, **kwargs) -> ImageDataModule:
    dm = ImageDataModule(source=source(str(root), download=False), **{"val_size": 40, **kwargs})
    dm.prepare_data()
    return dm


def raw(root, name: str = "FashionMNIST"):
    return root / name / "raw"


def test_the_default_source_is_fashion_mnist():
    dm = ImageDataModule()
    assert isinstance(dm.source, FashionMNIST)
    assert dm.batch_size == 64 and dm.input_contract is None


def test_the_contract_is_measured_on_the_training_split(tiny_data):
    dm = make_datamodule(tiny_data)
    dm.setup("fit")
    contract = dm.input_contract
    assert contract.classes == tuple(datasets.FashionMNIST.classes)
    assert (contract.channels, contract.size, contract.photos) == (1, (28, 28), "object")
    pixels = dm.train_set.images.double() / 255  # the training split only, not the validation images
    assert contract.mean == pytest.approx((pixels.mean().item(),), abs=1e-9)
    assert contract.std == pytest.approx((pixels.std(correction=0).item(),), abs=1e-9)


@pytest.mark.parametrize("source, name", [(MNIST, "MNIST"), (KMNIST, "KMNIST")])
def test_mnist_and_kmnist_are_read_through_torchvision(source, name, tmp_path):
    write_tiny_idx(tmp_path / "data", name)
    dm = make_datamodule(tmp_path / "data", source)
    dm.setup("fit")
    dm.setup("test")
    assert dm.input_contract.classes == tuple(getattr(datasets, name).classes)
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (200, 40, 60)


def test_splits_are_uint8_tensors_with_int64_labels(tiny_data):
    dm = make_datamodule(tiny_data)
    dm.setup("fit")
    dm.setup("test")
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (200, 40, 60)
    assert dm.train_set.images.dtype == torch.uint8 and dm.train_set.image_shape == (1, 28, 28)
    assert dm.train_set.labels.dtype == torch.int64


def test_validation_is_a_seeded_disjoint_split_of_the_training_images(tiny_data):
    def split(seed):
        dm = make_datamodule(tiny_data, split_seed=seed)
        dm.setup("fit")
        return dm.train_set.images, dm.val_set.images

    train, val = split(0)
    all_images = FashionMNIST(str(tiny_data)).load(train=True).images
    as_rows = {tuple(x.flatten().tolist()) for x in torch.cat([train, val])}
    assert len(as_rows) == len(all_images)  # every image exactly once
    assert torch.equal(split(0)[1], val)
    assert not torch.equal(split(1)[1], val)


def test_val_size_may_be_a_fraction(tiny_data):
    dm = make_datamodule(tiny_data, val_size=0.25)
    dm.setup("fit")
    assert (len(dm.train_set), len(dm.val_set)) == (180, 60)


def test_batches_are_cut_on_the_device_and_keep_their_labels(tiny_data):
    dm = make_datamodule(tiny_data, batch_size=32)
    dm.setup("fit")
    images, labels = next(iter(dm.train_dataloader()))
    assert images.shape == (32, 1, 28, 28) and images.dtype == torch.uint8 and labels.shape == (32,)
    assert dm.on_after_batch_transfer((images, labels), 0) == (images, labels), "no augmentation: as it is"
    for image, label in zip(images[:5], labels[:5], strict=True):  # find each image in the training set
        match = (dm.train_set.images == image).flatten(1).all(dim=1)
        assert dm.train_set.labels[match].eq(label).all()


def test_eval_loaders_keep_order_and_use_the_eval_batch_size(tiny_data):
    dm = make_datamodule(tiny_data, eval_batch_size=25)
    dm.setup("test")
    batches = list(dm.test_dataloader())
    assert [len(b[1]) for b in batches] == [25, 25, 10]
    assert torch.equal(
        torch.cat([b[1] for b in batches]), FashionMNIST(str(tiny_data)).load(train=False).labels
    )


@pytest.mark.parametrize(
    "bad",
    [{"batch_size": 0}, {"eval_batch_size": -1}, {"val_size": -5}, {"val_size": 1.5}, {"num_workers": -1}],
)
def test_bad_settings_are_refused_with_the_setting_named(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        ImageDataModule(**bad)


def test_a_validation_set_as_big_as_the_training_set_is_refused(tiny_data):
    dm = make_datamodule(tiny_data, val_size=240)
    with pytest.raises(ValueError, match="val_size=240 leaves no training images"):
        dm.setup("fit")


def test_a_source_must_give_uint8_images_and_labels_in_range():
    with pytest.raises(DataError, match="uint8"):
        LabelledImages(torch.zeros(2, 1, 4, 4), torch.zeros(2, dtype=torch.long), ["a"])
    with pytest.raises(DataError, match="labels outside 0..1"):
        LabelledImages(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.tensor([0, 2]), ["a", "b"])


def test_a_source_may_give_numpy_arrays_and_labels_of_any_integer_type():
    images = np.zeros((3, 1, 4, 4), dtype=np.uint8)
    split = LabelledImages(images, np.array([0, 1, 1], dtype=np.int32), ["a", "b"])
    assert split.images.dtype == torch.uint8 and split.labels.dtype == torch.int64
    assert split.labels.tolist() == [0, 1, 1]
    with pytest.raises(DataError, match=r"labels must be integers \[N\], got torch.float32"):
        LabelledImages(torch.zeros(3, 1, 4, 4, dtype=torch.uint8), torch.tensor([0.0, 1.0, 1.0]), ["a", "b"])
    with pytest.raises(DataError, match="images must be a torch tensor or a NumPy array, got a str"):
        LabelledImages("images.npy", torch.tensor([0, 1, 1]), ["a", "b"])


class OneImageOfItsOwn(ImageSource):
    """A source whose last class has a single training image."""

    def __init__(self, images: int = 6) -> None:
        labels = torch.tensor([0] * (images - 1) + [1])
        self.split = LabelledImages(torch.zeros(images, 1, 8, 8, dtype=torch.uint8), labels, ["many", "one"])

    def load(self, train: bool) -> LabelledImages:
        return self.split


def test_a_class_left_without_training_images_is_refused():
    """Its one image held out for validation, the model could never learn it; seeds differ in which
    images they hold out, so some seed of 0-20 takes it."""
    refused = []
    for seed in range(21):
        dm = ImageDataModule(source=OneImageOfItsOwn(), val_size=2, split_seed=seed)
        try:
            dm.setup("fit")
        except DataError as err:
            refused.append(str(err))
        else:
            assert "one" not in [dm.train_set.classes[label] for label in dm.val_set.labels.tolist()]
    assert refused and set(refused) == {
        "no training images of class one: the validation split took all of their images (data.val_size); "
        "give them more images, or try another data.split_seed"
    }


def test_a_share_of_a_few_images_still_holds_one_out():
    dm = ImageDataModule(source=OneImageOfItsOwn(images=12), val_size=0.05, split_seed=1)
    dm.setup("fit")
    assert (len(dm.train_set), len(dm.val_set)) == (11, 1)


class StreamedSplit(torch.utils.data.Dataset):
    """A source's own split read on access, with only what the source contract asks of one."""

    classes = ["even", "odd"]
    image_shape = (1, 8, 8)

    def __init__(self, labels: torch.Tensor) -> None:
        self.labels = labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return torch.full(self.image_shape, index % 256, dtype=torch.uint8), int(self.labels[index])

    def subset(self, index: torch.Tensor) -> StreamedSplit:
        return StreamedSplit(self.labels[index])

    def first(self, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        images = torch.stack([self[i][0] for i in range(min(count, len(self)))])
        return images, self.labels[:count]


class StreamedSource(ImageSource):
    def load(self, train: bool) -> StreamedSplit:
        return StreamedSplit(torch.arange(100) % 2)


def test_a_sources_own_streamed_split_is_saved_in_a_checkpoint():
    """It has neither files nor images in memory to tell which images validation holds: the checkpoint
    says how many, as before."""
    data = ImageDataModule(StreamedSource(), val_size=10)
    data.setup("fit")
    assert data.state_dict()["validation_split"] == {"images": 10, "of": 100, "split_seed": 0}


def test_a_checkpoints_split_digest_that_this_run_cannot_make_is_refused_as_another_split():
    """A checkpoint that names its validation images, resumed on a split that cannot name its own (the
    source now streams them): which images validation held cannot be checked, so it is not trusted."""
    data = ImageDataModule(StreamedSource(), val_size=10)
    data.trainer = Trainer(logger=False, enable_checkpointing=False)
    data.trainer.state.fn = TrainerFn.FITTING
    data.setup("fit")
    saved = {"images": 10, "of": 100, "split_seed": 0, "digest": "0123456789abcdef"}
    with pytest.raises(
        ConfigError, match=re.escape("hold out 10 of 100 images (split_seed 0) but other images")
    ):
        data.load_state_dict({"validation_split": saved})


def test_a_truncated_idx_file_is_named(tiny_data):
    path = raw(tiny_data) / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(
        DataError, match="train-images-idx3-ubyte is not a readable IDX file.*truncated or corrupt; delete"
    ):
        make_datamodule(tiny_data).setup("fit")


def test_a_wrong_magic_number_is_named(tiny_data):
    images, labels = raw(tiny_data) / "t10k-images-idx3-ubyte", raw(tiny_data) / "t10k-labels-idx1-ubyte"
    images.write_bytes(labels.read_bytes())  # a labels file where the images belong
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte is not a readable IDX file"):
        make_datamodule(tiny_data).setup("test")


def test_images_of_another_size_than_28x28_are_named(tiny_data):
    """A header rewritten for the same number of bytes (14x56 rows and columns) reads, but garbled."""
    images = raw(tiny_data) / "t10k-images-idx3-ubyte"
    content = bytearray(images.read_bytes())
    content[8:16] = (14).to_bytes(4, "big") + (56).to_bytes(4, "big")
    images.write_bytes(content)
    with pytest.raises(
        DataError, match="t10k-images-idx3-ubyte holds 14x56 images, where FashionMNIST's are 28x28"
    ):
        make_datamodule(tiny_data).setup("test")


def test_labels_out_of_range_are_reported(tiny_data):
    (raw(tiny_data) / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(torch.full((60,), 12), LABEL_MAGIC))
    with pytest.raises(DataError, match=r"FashionMNIST/raw \(t10k files\): labels outside 0..9.*delete"):
        make_datamodule(tiny_data).setup("test")


def test_images_and_labels_of_different_counts_are_reported(tiny_data):
    (raw(tiny_data) / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(torch.zeros(59), LABEL_MAGIC))
    with pytest.raises(DataError, match="60 images but 59 labels"):
        make_datamodule(tiny_data).setup("test")


@pytest.fixture
def local_copy(tmp_path, no_system_copies):
    """Four .gz files as a local copy holds them (tiny, so not the official content)."""
    return raw(write_tiny_idx(tmp_path / "copy", gz=True))


def test_a_truncated_gz_in_a_local_copy_is_named_and_nothing_is_kept(local_copy, tmp_path):
    path = local_copy / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz is not a readable gzip file.*truncated"):
        FashionMNIST(str(tmp_path / "data"), local_copy=str(local_copy)).prepare()
    assert not any(raw(tmp_path / "data").iterdir()), "no half-written file is left behind"


def test_a_corrupt_gz_in_a_local_copy_is_named(local_copy, tmp_path):
    (local_copy / "train-images-idx3-ubyte.gz").write_bytes(b"this is not gzip data at all")
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz is not a readable gzip file"):
        FashionMNIST(str(tmp_path / "data"), local_copy=str(local_copy)).prepare()


def test_a_local_copy_must_have_the_official_content(local_copy, tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(local_copy))
    with pytest.raises(DataError, match="does not decompress to the official train-images-idx3-ubyte"):
        FashionMNIST(str(tmp_path / "data"), download=False).prepare()
    assert not any(raw(tmp_path / "data").iterdir()), "nothing unverified is kept"


def test_a_local_copy_with_the_official_content_is_unpacked(local_copy, tmp_path, monkeypatch):
    # the tiny copy stands in for the official one: its own MD5s are the expected ones
    tiny = write_tiny_idx(tmp_path / "plain")
    md5s = {name: hashlib.md5((raw(tiny) / name).read_bytes()).hexdigest() for name in FILES}
    monkeypatch.setattr("fashion_lightning.data.fashion_mnist_copies.CONTENT_MD5", md5s)
    source = FashionMNIST(str(tmp_path / "data"), download=False, local_copy=str(local_copy))
    source.prepare()
    umask = os.umask(0)
    os.umask(umask)
    for name in FILES:
        assert (raw(tmp_path / "data") / name).read_bytes() == (raw(tiny) / name).read_bytes()
        assert (raw(tmp_path / "data") / name).stat().st_mode & 0o777 == 0o666 & ~umask, "not private"
    assert len(source.load(train=True)) == 240


def test_a_named_local_copy_without_the_files_is_reported(tmp_path, no_system_copies):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"--data.source.local_copy names .*empty, but it lacks train-images"):
        FashionMNIST(str(tmp_path / "data"), local_copy=str(tmp_path / "empty")).prepare()


def test_no_data_and_no_download_names_the_three_ways(tmp_path, no_system_copies):
    with pytest.raises(DataError) as err:
        FashionMNIST(str(tmp_path / "data"), download=False).prepare()
    message = str(err.value)
    for way in ("--data.source.local_copy", ENV_VAR, "apt-get install dataset-fashion-mnist", "go online"):
        assert way in message


def test_offline_download_failure_names_the_three_ways(tmp_path, no_system_copies, monkeypatch):
    # nothing listens on port 9 of this machine: every mirror refuses at once, as offline
    monkeypatch.setattr(datasets.FashionMNIST, "mirrors", ["http://127.0.0.1:9/"])
    with pytest.raises(DataError, match="the download failed(.|\n)*--data.source.local_copy(.|\n)*go online"):
        FashionMNIST(str(tmp_path / "data")).prepare()


def test_an_unwritable_data_dir_is_reported(tmp_path, no_system_copies):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the data folder should go")
    with pytest.raises(DataError, match="cannot create the data folder .* --data.source.root"):
        FashionMNIST(str(blocker / "data")).prepare()


@pytest.mark.parametrize("source, name", [(FashionMNIST, "FashionMNIST"), (MNIST, "MNIST")])
def test_download_path_is_torchvisions(source, name, tmp_path, no_system_copies, monkeypatch):
    """The online path really is torchvision's download: served here from a local HTTP server."""
    served = raw(write_tiny_idx(tmp_path / "mirror", name, gz=True), name)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    dataset = getattr(datasets, name)
    try:
        md5s = {f"{n}.gz": hashlib.md5((served / f"{n}.gz").read_bytes()).hexdigest() for n in FILES}
        monkeypatch.setattr(dataset, "mirrors", [f"http://127.0.0.1:{server.server_address[1]}/"])
        monkeypatch.setattr(dataset, "resources", list(md5s.items()))
        source(str(tmp_path / "data")).prepare()
    finally:
        server.shutdown()
    loaded = source(str(tmp_path / "data"), download=False).load(train=False)
    assert len(loaded) == 60 and loaded.classes == dataset.classes
