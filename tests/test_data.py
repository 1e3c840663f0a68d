"""The data module and the file handling, on tiny files the tests write."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import os
import threading

import pytest
import torch
from tiny_idx import idx_bytes, write_tiny_fashion_mnist
from torchvision.datasets import FashionMNIST

from fashion_lightning.data import DataError, FashionMNISTDataModule
from fashion_lightning.data.files import ENV_VAR, IMAGE_MAGIC, LABEL_MAGIC, ensure_files, load_split, raw_dir


def make_datamodule(data_dir, **kwargs) -> FashionMNISTDataModule:
    dm = FashionMNISTDataModule(data_dir=str(data_dir), download=False, **{"val_size": 40, **kwargs})
    dm.prepare_data()
    return dm


def test_exposes_what_a_model_needs():
    dm = FashionMNISTDataModule()
    assert dm.classes == ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                          "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")  # fmt: skip
    assert (dm.num_classes, dm.dims, dm.batch_size) == (10, (1, 28, 28), 64)


def test_gz_files_in_data_dir_are_unpacked_and_read_as_tensors(tiny_data):
    dm = make_datamodule(tiny_data)
    umask = os.umask(0)
    os.umask(umask)
    for name in ("train-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        assert (raw_dir(tiny_data) / name).is_file()
        assert (raw_dir(tiny_data) / name).stat().st_mode & 0o777 == 0o666 & ~umask, "not private"
    dm.setup("fit")
    dm.setup("test")
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (200, 40, 60)
    images, labels = dm.train_set.tensors
    assert images.dtype == torch.uint8 and images.shape[1:] == (1, 28, 28)
    assert labels.dtype == torch.int64


def test_validation_is_a_seeded_disjoint_split_of_the_training_images(tiny_data):
    def split(seed):
        dm = make_datamodule(tiny_data, split_seed=seed)
        dm.setup("fit")
        return dm.train_set.tensors[0], dm.val_set.tensors[0]

    train, val = split(0)
    all_images, _ = load_split(raw_dir(tiny_data), train=True)
    as_rows = {tuple(x.flatten().tolist()) for x in torch.cat([train, val])}
    assert len(as_rows) == len(all_images)  # every image exactly once
    assert torch.equal(split(0)[1], val)
    assert not torch.equal(split(1)[1], val)


def test_batches_are_sliced_and_normalised_on_the_device(tiny_data):
    dm = make_datamodule(tiny_data, batch_size=32)
    dm.setup("fit")
    images, labels = next(iter(dm.train_dataloader()))
    assert images.shape == (32, 1, 28, 28) and images.dtype == torch.uint8 and labels.shape == (32,)
    normalised, same_labels = dm.on_after_batch_transfer((images, labels), 0)
    expected = (images.float() / 255 - 0.2860) / 0.3530
    torch.testing.assert_close(normalised, expected)
    assert same_labels is labels
    # each image keeps its own label: find it in the training set
    train_images, train_labels = dm.train_set.tensors
    for image, label in zip(images[:5], labels[:5], strict=True):
        match = (train_images == image).flatten(1).all(dim=1)
        assert train_labels[match].eq(label).all()


def test_eval_loaders_keep_order_and_use_the_eval_batch_size(tiny_data):
    dm = make_datamodule(tiny_data, eval_batch_size=25)
    dm.setup("test")
    batches = list(dm.test_dataloader())
    assert [len(b[1]) for b in batches] == [25, 25, 10]
    assert torch.equal(torch.cat([b[1] for b in batches]), load_split(raw_dir(tiny_data), train=False)[1])


@pytest.mark.parametrize("bad", [{"batch_size": 0}, {"eval_batch_size": -1}, {"val_size": -5}])
def test_bad_sizes_are_refused_with_the_setting_named(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        FashionMNISTDataModule(**bad)


def test_a_validation_set_as_big_as_the_training_set_is_refused(tiny_data):
    dm = make_datamodule(tiny_data, val_size=240)
    with pytest.raises(ValueError, match="val_size=240 leaves no training images"):
        dm.setup("fit")


def test_a_truncated_gz_is_reported_with_the_fix(tiny_data):
    path = raw_dir(tiny_data) / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz is not a readable gzip file.*truncated"):
        make_datamodule(tiny_data)
    assert not list(raw_dir(tiny_data).glob(".train-images*")), "no half-written file is left behind"


def test_a_corrupt_gz_is_reported(tiny_data):
    path = raw_dir(tiny_data) / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(b"this is not gzip data at all")
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz is not a readable gzip file"):
        make_datamodule(tiny_data)


def test_a_truncated_idx_file_is_reported(tiny_data):
    dm = make_datamodule(tiny_data)
    path = raw_dir(tiny_data) / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataError, match="header .* needs .* truncated or corrupt; delete"):
        dm.setup("fit")


def test_a_wrong_magic_number_is_reported(tiny_data):
    dm = make_datamodule(tiny_data)
    images, labels = (
        raw_dir(tiny_data) / "t10k-images-idx3-ubyte",
        raw_dir(tiny_data) / "t10k-labels-idx1-ubyte",
    )
    images.write_bytes(labels.read_bytes())  # a labels file where the images belong
    with pytest.raises(DataError, match=f"magic number {LABEL_MAGIC}, expected {IMAGE_MAGIC}"):
        dm.setup("test")


def test_labels_out_of_range_are_reported(tiny_data):
    dm = make_datamodule(tiny_data)
    (raw_dir(tiny_data) / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(torch.full((60,), 12), LABEL_MAGIC))
    with pytest.raises(DataError, match="labels outside 0..9"):
        dm.setup("test")


def test_images_and_labels_of_different_counts_are_reported(tiny_data):
    dm = make_datamodule(tiny_data)
    (raw_dir(tiny_data) / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(torch.zeros(59), LABEL_MAGIC))
    with pytest.raises(DataError, match="60 t10k images but 59 labels"):
        dm.setup("test")


def test_a_local_copy_must_have_the_official_content(tmp_path, no_system_copies, monkeypatch):
    copy = raw_dir(write_tiny_fashion_mnist(tmp_path / "copy"))
    monkeypatch.setenv(ENV_VAR, str(copy))
    with pytest.raises(DataError, match=r"decompresses to content with MD5 \w+, but the official"):
        ensure_files(tmp_path / "data", download=False)
    assert not any(raw_dir(tmp_path / "data").iterdir()), "nothing unverified is kept"


def test_a_named_local_copy_without_the_files_is_reported(tmp_path, no_system_copies):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"--data.local_copy names .*empty, but it lacks train-images"):
        ensure_files(tmp_path / "data", local_copy=tmp_path / "empty")


def test_no_data_and_no_download_names_the_three_ways(tmp_path, no_system_copies):
    with pytest.raises(DataError) as err:
        ensure_files(tmp_path / "data", download=False)
    message = str(err.value)
    for way in ("--data.local_copy", ENV_VAR, "apt-get install dataset-fashion-mnist", "go online"):
        assert way in message


def test_offline_download_failure_names_the_three_ways(tmp_path, no_system_copies, monkeypatch):
    # nothing listens on port 9 of this machine: every mirror refuses at once, as offline
    monkeypatch.setattr(FashionMNIST, "mirrors", ["http://127.0.0.1:9/"])
    with pytest.raises(DataError, match="the download failed(.|\n)*--data.local_copy(.|\n)*go online"):
        ensure_files(tmp_path / "data", download=True)


def test_an_unwritable_data_dir_is_reported(tmp_path, no_system_copies):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the data folder should go")
    with pytest.raises(DataError, match="cannot create the data folder .* --data.data_dir"):
        ensure_files(blocker / "data")


def test_download_path_is_torchvisions(tmp_path, no_system_copies, monkeypatch):
    """The online path really is torchvision's download: served here from a local HTTP server."""
    served = write_tiny_fashion_mnist(tmp_path / "mirror")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(raw_dir(served)))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        md5s = {
            name: hashlib.md5((raw_dir(served) / name).read_bytes()).hexdigest()
            for name, _ in FashionMNIST.resources
        }
        monkeypatch.setattr(FashionMNIST, "mirrors", [f"http://127.0.0.1:{server.server_address[1]}/"])
        monkeypatch.setattr(FashionMNIST, "resources", list(md5s.items()))
        ensure_files(tmp_path / "data", download=True)
    finally:
        server.shutdown()
    with gzip.open(raw_dir(served) / "t10k-labels-idx1-ubyte.gz") as packed:
        assert (raw_dir(tmp_path / "data") / "t10k-labels-idx1-ubyte").read_bytes() == packed.read()
