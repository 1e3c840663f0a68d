"""Any image-classification data set as one LightningDataModule; its ``source`` says where the images are."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import torch
from jsonargparse import lazy_instance
from lightning.pytorch import LightningDataModule
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities import rank_zero_warn
from torch.utils.data import DataLoader, Subset

from fashion_lightning.data.augmentation import Augmentation
from fashion_lightning.data.batches import DeviceBatches, EpochBatches, StreamedBatches, usable_cpus
from fashion_lightning.data.contract import InputContract
from fashion_lightning.data.mnist_family import FashionMNIST
from fashion_lightning.data.photos import load_photos
from fashion_lightning.data.source import DataError, ImageSource, LabelledImages
from fashion_lightning.errors import ConfigError
from fashion_lightning.stop_signals import own_process_group

STATS_SAMPLE = 10_000  # images of a streamed split that its mean and std are measured on
STATS_CHUNK_PIXELS = 1 << 22


class ImageDataModule(LightningDataModule):
    """A source's training images split into training and validation by a fixed seed, and its test images.

    A split that fits in memory is moved once, as uint8, to the device that trains, and batches are cut
    there (``DeviceBatches``); one that does not is read from disk by worker processes
    (``StreamedBatches``). Training batches are augmented on the device (``augment``). Normalisation
    is the model's (it keeps the training split's per-channel mean and std in its ``InputContract``,
    which this module measures: ``input_contract``, after ``setup("fit")``).
    """

    def __init__(
        self,
        source: ImageSource = lazy_instance(FashionMNIST),
        batch_size: int = 64,
        eval_batch_size: int = 256,
        val_size: int | float = 5000,
        split_seed: int = 0,
        shuffle_seed: int | None = None,
        augment: Augmentation = Augmentation(),
        num_workers: int = 4,
        predict_images: str | list[str] | None = None,
    ) -> None:
        """
        Args:
            source: where the images come from (a class path and its settings; by default Fashion-MNIST).
            batch_size: training batch size.
            eval_batch_size: batch size for validation, test and predict, each test-time view a pass of its
                own. A CPU classifies a few hundred images at a time faster per image than thousands (its
                caches); a GPU may take more.
            val_size: training images held out for validation: a number, or a fraction below 1.
            split_seed: seed of the train/validation split, independent of the training seed.
            shuffle_seed: seed of the training order (epoch ``e`` uses ``shuffle_seed + e``); by
                default the run's seed (``seed_everything``), shared by all DDP ranks.
            augment: random changes to training images, drawn per image on the training device.
            num_workers: processes reading images from disk, for a source too large for memory (at most
                the CPU cores this process may use).
            predict_images: an image file or folder, or a list of them, for ``predict`` (any size, colour
                or format: each is fitted to the model's ``InputContract``); by default ``predict`` runs
                on the test set.
        """
        super().__init__()
        for name, value in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
            if value <= 0:
                raise ConfigError(f"data.{name} must be a positive number of images, got {value}")
        if val_size < 0 or (isinstance(val_size, float) and val_size >= 1):
            raise ConfigError(
                f"data.val_size must be 0 or more images, or a fraction below 1; got {val_size}"
            )
        if num_workers < 0:
            raise ConfigError(f"data.num_workers must be 0 or more, got {num_workers}")
        self.save_hyperparameters()
        self.source = source
        self.batch_size = batch_size
        self.augment = augment
        self.train_set: LabelledImages | None = None
        self.val_set: LabelledImages | None = None
        self.test_set: LabelledImages | None = None
        self.predict_set: LabelledImages | None = None
        self.predict_names: list[str] = []  # what each predicted image is: a file, or "test image N"
        self.input_contract: InputContract | None = None  # known after setup("fit") or setup("validate")
        self._train_batches: EpochBatches | None = None
        self._resume_position: dict | None = None  # the training batches' place, from a checkpoint
        self._held_out: dict | None = None  # which training images validation holds, once measured

    def prepare_data(self) -> None:
        if self._predicting_photos():
            return  # the model's checkpoint says all that photos need: no data set on the machine
        self.source.prepare()

    def _predicting_photos(self) -> bool:
        return bool(self.hparams.predict_images) and self.trainer is not None and self.trainer.predicting

    def setup(self, stage: str) -> None:
        if stage in ("fit", "validate") and self.train_set is None:
            images = self.source.load(train=True)
            val_size = self._val_count(len(images))
            order = torch.randperm(
                len(images), generator=torch.Generator().manual_seed(self.hparams.split_seed)
            )
            self.val_set, self.train_set = images.subset(order[:val_size]), images.subset(order[val_size:])
            _check_every_class_trains(images, self.train_set)
            self.input_contract = self._measure(self.train_set)
            self.augment.check_fits(self.input_contract.size)
        if stage in ("test", "predict") and self.test_set is None and not self._predicting_photos():
            self.test_set = self.source.load(train=False)
        if stage == "predict" and self.predict_set is None:
            self._setup_predict()
        self._check_fits_the_model()

    def _check_fits_the_model(self) -> None:
        """A model from a checkpoint (resumed, tested) must get the classes and shape it was trained on."""
        contract = getattr(self.trainer.lightning_module, "input_contract", None) if self.trainer else None
        for split in (self.train_set, self.test_set):
            if contract is not None and split is not None:
                why = contract.mismatch(split.classes, split.image_shape)
                if why:
                    raise DataError(
                        f"the data does not fit the model: {why}. Give the data settings it was trained "
                        "with (its run folder's config.yaml)"
                    )

    def _val_count(self, available: int) -> int:
        val_size = self.hparams.val_size
        count = val_size
        if isinstance(val_size, float):  # a share: at least one image, or there would be no validation
            count = max(math.floor(val_size * available), 1 if val_size > 0 else 0)
        if count >= available:
            raise ConfigError(
                f"data.val_size={val_size} leaves no training images: the training set has {available}; "
                "give fewer, or a share of them (e.g. --data.val_size 0.1)"
            )
        return count

    def _measure(self, train: LabelledImages) -> InputContract:
        """The training split's contract: classes, shape, and per-channel mean and std of pixels in [0, 1]."""
        total = squares = 0
        count = 0
        for images in self._stats_batches(train):
            pixels = images.double().div_(255)
            total = total + pixels.sum(dim=(0, 2, 3))
            squares = squares + pixels.square().sum(dim=(0, 2, 3))
            count += pixels[:, 0].numel()
        mean = total / count
        std = (squares / count - mean.square()).clamp(min=1e-12).sqrt()
        channels, height, width = train.image_shape
        return InputContract(
            classes=tuple(train.classes),
            channels=channels,
            size=(height, width),
            mean=tuple(mean.tolist()),
            std=tuple(std.tolist()),
            photos=self.source.photos,
        )

    def _stats_batches(self, train: LabelledImages):
        if isinstance(train, LabelledImages):  # in float64 a chunk at a time: a few million pixels
            return train.images.split(max(1, STATS_CHUNK_PIXELS // train.images[0].numel()))
        return self._read(train, STATS_SAMPLE)  # a streamed split: a seeded sample

    def training_sample(self, count: int) -> torch.Tensor:
        """``count`` training images (uint8 ``[N, C, H, W]``), the same on every run and DDP rank: for a
        net that sets itself from the data before training (``ConvBNNet``'s whitening)."""
        if self.train_set is None:
            raise RuntimeError("training_sample() needs setup('fit') first")
        if isinstance(self.train_set, LabelledImages):
            return self.train_set.images[_seeded_order(len(self.train_set))[:count]]
        return torch.cat(list(self._read(self.train_set, count)))

    def _read(self, train, count: int):
        """Batches of a seeded sample of ``count`` images of a streamed split, read by the workers."""
        # the workers' seeds from a generator of its own: drawn from torch's global one, they would change
        # the net's initial weights (made after this) for a streamed split only
        subset = Subset(train, _seeded_order(len(train))[:count].tolist())
        loader = DataLoader(
            subset,
            batch_size=256,
            num_workers=self._workers(),
            worker_init_fn=own_process_group,
            generator=torch.Generator(),
        )
        return (images for images, _ in loader)

    def _setup_predict(self) -> None:
        if not self.hparams.predict_images:
            self.predict_set = self.test_set
            files = getattr(self.test_set, "files", None)  # a streamed split of one's own may lack them
            names = files or [f"test image {i}" for i in range(len(self.test_set))]
            self.predict_names = [str(name) for name in names]
            return
        contract = self.trainer.lightning_module.input_contract  # the model's own, from its checkpoint
        if contract is None:  # an untrained model: nothing says how its input looks
            raise ConfigError(
                "data.predict_images: predicting your own images needs a trained model: give --ckpt_path "
                "(a .ckpt file, or best/last of the runs under trainer.default_root_dir)"
            )
        named = self.hparams.predict_images
        try:
            images, paths, skipped = load_photos([named] if isinstance(named, str) else named, contract)
        except FileNotFoundError as err:
            raise DataError(f"data.predict_images: {err}") from None
        for path, reason in skipped:
            rank_zero_warn(f"skipped {path}: {reason}")
        if not paths:
            raise DataError(
                f"data.predict_images={named} holds no readable image "
                f"({len(skipped)} files skipped); give PNG or JPEG files, or folders of them"
            )
        unlabelled = torch.full((len(images),), -1, dtype=torch.long)
        self.predict_set = LabelledImages(images, unlabelled, contract.classes)
        self.predict_names = [str(path) for path in paths]

    def train_dataloader(self) -> EpochBatches:
        batches = self._batches(self.train_set, self.batch_size, train=True)
        if self._resume_position is not None:
            batches.load_state_dict(self._resume_position)
            self._resume_position = None
        self._train_batches = batches
        return batches

    def val_dataloader(self) -> EpochBatches:
        return self._batches(self.val_set, self.hparams.eval_batch_size)

    def test_dataloader(self) -> EpochBatches:
        return self._batches(self.test_set, self.hparams.eval_batch_size)

    def predict_dataloader(self) -> EpochBatches:
        return self._batches(self.predict_set, self.hparams.eval_batch_size)

    def _batches(self, split: LabelledImages | None, batch_size: int, train: bool = False) -> EpochBatches:
        if split is None:
            raise RuntimeError("call setup() for this stage before asking for its dataloader")
        trainer = self.trainer
        device = trainer.strategy.root_device if trainer else torch.device("cpu")
        rank, world_size = (trainer.global_rank, trainer.world_size) if trainer else (0, 1)
        seed = self._shuffle_seed() if train else 0
        sampler = EpochBatches.sampler_for_rank(len(split), rank, world_size, shuffle=train, seed=seed)
        if isinstance(split, LabelledImages):
            return DeviceBatches(split.images.to(device), split.labels.to(device), batch_size, sampler)
        pin = device.type == "cuda"
        return StreamedBatches(split, batch_size, sampler, num_workers=self._workers(), pin_memory=pin)

    def _workers(self) -> int:
        return min(self.hparams.num_workers, usable_cpus())

    def _shuffle_seed(self) -> int:
        if self.hparams.shuffle_seed is not None:
            return self.hparams.shuffle_seed
        seed = torch.initial_seed() % 2**63  # what seed_everything set
        return self.trainer.strategy.broadcast(seed) if self.trainer else seed

    def state_dict(self) -> dict:
        # The training batches' place in the epoch. Lightning saves it too (the batches follow its
        # state_dict protocol), but restores it only into a loader made after the checkpoint is read:
        # a step-wise scheduler asks for the loader earlier (estimated_stepping_batches; Lightning
        # issue #20550). This state is given back before anything asks for a loader.
        state = {"validation_split": self._validation_split()} if self.train_set is not None else {}
        return state | ({"train_batches": self._train_batches.state_dict()} if self._train_batches else {})

    def load_state_dict(self, state_dict: dict) -> None:
        saved = state_dict.get("validation_split")
        resuming = self.trainer is not None and self.trainer.state.fn == TrainerFn.FITTING
        if resuming and saved is not None:
            now = self._validation_split()
            if any(now.get(key) != value for key, value in saved.items()):  # either may lack a digest
                counted = ("images", "of", "split_seed")
                same = all(now[key] == saved.get(key) for key in counted)
                other = " but other images (the training images changed)" if same else ""
                raise ConfigError(
                    f"the checkpoint's run held out {_split_words(saved)} for validation; this run would "
                    f"hold out {_split_words(now)}{other} and train on some of the checkpoint's validation "
                    "images. Resume with the run's data.val_size and data.split_seed (its config.yaml) and "
                    "the same training images, or start a new run"
                )
        # a resumed fit goes on from there; a validate or test does not train, nor a later fit of this data
        # module without the checkpoint
        self._resume_position = state_dict.get("train_batches") if resuming else None

    def _validation_split(self) -> dict:
        """Which training images are held out (after ``setup("fit")``): how many, of how many, by which
        seed, and which (``digest``: their files' names where they have files, else their pixels; and
        their labels). Measured once."""
        if self._held_out is None:
            count = len(self.val_set)
            self._held_out = {
                "images": count,
                "of": count + len(self.train_set),
                "split_seed": self.hparams.split_seed,
            }
            digest = _digest(self.val_set)
            if digest is not None:
                self._held_out["digest"] = digest
        return self._held_out

    def transfer_batch_to_device(self, batch, device: torch.device, dataloader_idx: int):
        images, labels = batch
        if images.device == device:
            # DeviceBatches cut it there already; Lightning's generic transfer would walk the batch, at
            # every step, only to find that out
            return batch
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        if self.augment.enabled and self.trainer is not None and self.trainer.training:
            images, labels = batch
            return self.augment(images), labels
        return batch


def _digest(split: LabelledImages) -> str | None:
    """Which images a split holds, as a short hash; None for a split that has neither files nor images
    in memory (a source's own streamed split). A file is named by its folder and name, so that a data
    folder moved elsewhere still matches."""
    files, images = getattr(split, "files", None), getattr(split, "images", None)
    if files is None and images is None:
        return None
    digest = hashlib.blake2b(split.labels.cpu().numpy().tobytes(), digest_size=8)
    if files is not None:
        names = "\0".join(f"{Path(file).parent.name}/{Path(file).name}" for file in files)
        digest.update(names.encode("utf-8", "surrogateescape"))
    else:
        digest.update(images.cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _split_words(split: dict[str, int]) -> str:
    return f"{split['images']} of {split['of']} images (split_seed {split['split_seed']})"


def _check_every_class_trains(images: LabelledImages, train: LabelledImages) -> None:
    """A class with no training image would be one the model can only get wrong, without a word."""

    def per_class(split: LabelledImages) -> list[int]:
        return torch.bincount(split.labels[split.labels >= 0], minlength=len(split.classes)).tolist()

    before, after = per_class(images), per_class(train)
    untrained = [index for index, count in enumerate(after) if count == 0]
    if not untrained:
        return
    names = [train.classes[index] for index in untrained]
    listed = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    if any(before[index] for index in untrained):
        why = (
            "the validation split took all of their images (data.val_size); give them more images, or "
            "try another data.split_seed"
        )
    else:
        why = "the training split has none"
    raise DataError(f"no training images of class {listed}: {why}")


def _seeded_order(count: int) -> torch.Tensor:
    # from a generator of its own, so that drawing a sample leaves torch's global one (the weights') alone
    return torch.randperm(count, generator=torch.Generator().manual_seed(0))
