"""Time the notes' training loop against this project's data path and Lightning CLI, on one machine.

    python scripts/benchmark.py                      # (a) notes' loop, (b) plain loop, (c) Lightning fit
    python scripts/benchmark.py --configs configs/fast.yaml configs/fast.yaml,configs/best.yaml

(a) the notes' own loop: torchvision ``FashionMNIST`` + ``ToTensor`` + ``DataLoader(batch_size=20)``,
    the dropout net, SGD lr=0.001 momentum=0.9, all 60,000 training images, no validation;
(b) a plain PyTorch loop over this project's data path (device-resident batches), same net and epochs,
    at ``--batch-size`` with SGD ``--lr`` momentum 0.9, channels-last and ``--precision`` (bf16 autocast
    by default, as the project's fast configs, but float32 on a CPU without AVX-512), validating on the
    held-out 5,000 every epoch;
(c) ``fashion-lightning fit`` (the CLI, in this process) with exactly (b)'s settings, per-class
    metrics, checkpoints and TensorBoard on;
(c0) Lightning's floor: a ``Trainer`` with no logger, checkpoints or callbacks fitting a LightningModule
    that only returns (b)'s loss, on the project's data module. (c0) vs (b) is what Lightning's loop
    itself costs; (c) vs (c0) is what the project's metrics, callbacks and logging add.
(b) and (c), and (b) and (c0), take turns step by step: each Lightning fit runs a training step of (b)
before each of its own, and (b)'s validation after its own, each timed apart, so a slow second of a
shared machine slows both (on a GPU each step of (b) waits for the fit's queued work, which is timed
as the fit's, and for its own). Seconds per epoch are the
median and the fastest epoch's; for (b), (c0) and (c) they include the per-epoch validation (and, in
(c), checkpointing and logging); the Lightning overheads are also given as the median over the pairs
of epochs run side by side. Images/s counts training images. ``--repeats N`` runs (c) and (c0) N times,
taking turns, and gives the median of what the project adds in each.
``--configs`` trains each experiment as given (config files joined by commas are layered, as
``fit --config A --config B``) and tests its best checkpoint: time to accuracy.
Prints markdown tables (paste them into BENCHMARKS.md with the command, machine and date).
"""

from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import lightning
import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import Callback
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

from fashion_lightning.cli import FashionLightningCLI
from fashion_lightning.cpu_precision import INSTEAD, SLOW, precision_for_this_cpu
from fashion_lightning.data import DeviceBatches, EpochBatches, FashionMNIST, ImageDataModule, InputContract
from fashion_lightning.models import DropoutNet
from fashion_lightning.models.standardize import Standardize

# the targets (test accuracy, seconds of training) of issue 17, on the 2-core CPU but for best_gpu.yaml
TARGETS = {
    "fast.yaml": (0.93, 60),
    "best.yaml": (0.945, 10 * 60),
    "dropout_tuned.yaml": (0.89, 15),
    "best_gpu.yaml": (0.955, 60),  # on a GPU
}


def notes_loop(data_dir: str, epochs: int) -> dict:
    """The course notes' loop as written: CPU, per-sample PIL decoding, batch 20, loss.item() per step."""
    device = torch.device("cpu")
    to_tensor = transforms.ToTensor()
    train = datasets.FashionMNIST(data_dir, train=True, transform=to_tensor)
    test = datasets.FashionMNIST(data_dir, train=False, transform=to_tensor)
    net = DropoutNet(1, (28, 28), len(train.classes)).to(device)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.001, momentum=0.9)
    loader = DataLoader(train, batch_size=20, shuffle=True)
    epoch_seconds = []
    for _ in range(epochs):
        start = time.perf_counter()
        running_loss = 0.0
        for inputs, labels in loader:
            inputs, labels = inputs.to(device), labels.to(device)
            optimizer.zero_grad()
            loss = F.cross_entropy(net(inputs), labels)
            loss.backward()
            optimizer.step()
            running_loss += loss.item()
        epoch_seconds.append(time.perf_counter() - start)
    accuracy = _accuracy(net, DataLoader(test, batch_size=20), lambda images: images, device)
    return _row("(a) notes' loop, batch 20", len(train), epoch_seconds, accuracy)


class PlainLoop:
    """(b): the same net on the project's data path, with nothing but PyTorch around it. Run a step at a
    time between a Lightning fit's steps (``FitClock``), each step timed on its own and drawing from
    (b)'s own random numbers, so that neither run changes the other's dropout masks."""

    def __init__(self, args: argparse.Namespace, device: torch.device) -> None:
        self.dm = ImageDataModule(
            FashionMNIST(args.data_dir), batch_size=args.batch_size, val_size=args.val_size
        )
        self.dm.setup("fit")
        self.dm.setup("test")
        self.device = device
        self.cuda = [device] if device.type == "cuda" else []
        contract = self.dm.input_contract
        self.standardize = Standardize(contract.mean, contract.std).to(device)
        with torch.random.fork_rng(devices=self.cuda):
            torch.manual_seed(0)
            self.net = dropout_net(contract).to(device, memory_format=torch.channels_last)
            self.random_states = self._random_states()
        self.optimizer = torch.optim.SGD(self.net.parameters(), lr=args.lr, momentum=0.9)
        bf16 = args.precision == "bf16-mixed"  # as Lightning's bf16-mixed
        self.autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)
        self.train = self._batches(self.dm.train_set, self.dm.batch_size, shuffle=True)
        self.val = self._batches(self.dm.val_set, self.dm.hparams.eval_batch_size)
        self.name = f"(b) plain PyTorch loop, batch {self.dm.batch_size}"
        self.seconds = 0.0  # of the epoch under way

    def _batches(self, split, batch_size: int, shuffle: bool = False) -> DeviceBatches:
        images, labels = split.images.to(self.device), split.labels.to(self.device)
        sampler = EpochBatches.sampler_for_rank(len(labels), shuffle=shuffle, seed=0)
        return DeviceBatches(images, labels, batch_size, sampler)

    def _random_states(self) -> list[torch.Tensor]:
        return [torch.get_rng_state(), *(torch.cuda.get_rng_state(device) for device in self.cuda)]

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """What the classifier's forward does before the net: channels-last, then normalisation."""
        return self.standardize(images.contiguous(memory_format=torch.channels_last))

    def start_epoch(self, epoch: int) -> None:
        self.seconds = 0.0
        self.train.sampler.set_epoch(epoch)
        self._steps = iter(self.train)

    def step(self) -> bool:
        """One training step, if the epoch has one left; False if not."""
        with torch.random.fork_rng(devices=self.cuda):
            torch.set_rng_state(self.random_states[0])
            for device, state in zip(self.cuda, self.random_states[1:], strict=True):
                torch.cuda.set_rng_state(state, device)
            start = self.clock()
            batch = next(self._steps, None)
            if batch is not None:
                images, labels = batch
                with self.autocast:
                    loss = F.cross_entropy(self.net(self.prepare(images)), labels)
                self.optimizer.zero_grad()
                loss.backward()
                self.optimizer.step()
            self.seconds += self.clock() - start
            self.random_states = self._random_states()
        return batch is not None

    def finish_epoch(self) -> float:
        """The epoch's steps left, if any, and its validation; the seconds the whole epoch took."""
        while self.step():
            pass
        start = self.clock()
        with self.autocast:
            _accuracy(self.net, self.val, self.prepare, self.device)
        return self.seconds + self.clock() - start

    def clock(self) -> float:
        """Seconds, once the device has done what it was given: a step is timed alone also on a GPU."""
        if self.cuda:
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def test_accuracy(self, net: torch.nn.Module | None = None) -> float:
        """Test accuracy of (b)'s net, or of ``net`` given the same batches and precision."""
        test = self._batches(self.dm.test_set, self.dm.hparams.eval_batch_size)
        with self.autocast:
            return _accuracy(self.net if net is None else net, test, self.prepare, self.device)


def plain_and_lightning(args: argparse.Namespace, root: Path, device: torch.device) -> tuple[dict, dict]:
    """(c) ``fashion-lightning fit`` with (b)'s settings, an epoch of (b) before each of its epochs."""
    cli_args = [
        "--seed_everything=0",
        f"--trainer.max_epochs={args.epochs}",
        "--model.net=fashion_lightning.models.DropoutNet",
        "--model.optimizer=torch.optim.SGD",
        f"--model.optimizer.lr={args.lr}",
        "--model.optimizer.momentum=0.9",
        f"--data.batch_size={args.batch_size}",
        f"--trainer.precision={args.precision}",
        "--model.channels_last=true",
        # TensorBoard pictures after the last validation only: ~1 s of drawing, outside the median epoch
        f"--pictures.every_n_epochs={args.epochs}",
    ]
    clock = FitClock(plain=PlainLoop(args, device))
    accuracy, n_train = _fit_and_test(cli_args, args, root / "lightning", clock)
    b = _row(clock.plain.name, n_train, clock.plain_epochs, clock.plain.test_accuracy())
    c = _row(f"(c) fashion-lightning fit, batch {args.batch_size}", n_train, clock.epochs, accuracy)
    return b, c


def dropout_net(contract: InputContract) -> DropoutNet:
    return DropoutNet(contract.channels, contract.size, len(contract.classes))


class BareLightning(LightningModule):
    """(c0): only what (b) computes, so that its fit costs what Lightning's own loop costs."""

    def __init__(self, lr: float, contract: InputContract) -> None:
        super().__init__()
        self.net = dropout_net(contract).to(memory_format=torch.channels_last)
        self.standardize = Standardize(contract.mean, contract.std)
        self.lr = lr

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(self.standardize(images.contiguous(memory_format=torch.channels_last)))

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        images, labels = batch
        return F.cross_entropy(self(images), labels)

    def validation_step(self, batch, batch_idx: int) -> torch.Tensor:
        images, labels = batch
        return (self(images).argmax(dim=1) == labels).sum()  # (b) counts the right answers too

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9)


def bare_lightning(args: argparse.Namespace, device: torch.device) -> tuple[dict, list[float]]:
    """(c0) Lightning's floor, with an epoch of (b) before each of its epochs: its row, and those epochs."""
    lightning.seed_everything(0, verbose=False)
    clock = FitClock(plain=PlainLoop(args, device))
    model = BareLightning(args.lr, clock.plain.dm.input_contract)
    trainer = Trainer(
        max_epochs=args.epochs,
        precision=args.precision,
        callbacks=[clock],
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=args.progress_bar == "true",
    )
    dm = clock.plain.dm  # the project's data module, as (b) and (c) use it
    trainer.fit(model, datamodule=dm)
    name = f"(c0) bare Lightning Trainer, batch {args.batch_size}"
    return _row(
        name, len(dm.train_set), clock.epochs, clock.plain.test_accuracy(model.net)
    ), clock.plain_epochs


def config_run(experiment: str, args: argparse.Namespace, root: Path) -> dict:
    """One experiment: config files joined by commas, layered in that order."""
    clock = FitClock()
    configs = experiment.split(",")
    name = Path(configs[-1]).stem
    accuracy, _ = _fit_and_test([f"--config={config}" for config in configs], args, root / name, clock)
    seconds = clock.fit_seconds
    target = TARGETS.get(Path(configs[-1]).name)
    met = "" if target is None else ("yes" if accuracy >= target[0] and seconds <= target[1] else "NO")
    goal = "" if target is None else f"≥{target[0]:.1%} in ≤{target[1]} s"
    return {
        "config": " + ".join(configs),
        "fit s": f"{seconds:.1f}",
        "s/epoch (median)": f"{statistics.median(clock.epochs):.2f}",
        "test acc": f"{accuracy:.2%}",
        "target": goal,
        "met": met,
    }


class FitClock(Callback):
    """Wall time of the fit (``on_train_start`` to ``on_train_end``) and of each training epoch, its
    validation and checkpointing included. Given a ``plain`` loop (b), it runs a step of (b) before each
    of the fit's steps and the rest of (b)'s epoch after the fit's validation, and leaves the time of
    its hooks out of the fit's epochs: the two runs take turns a step at a time, so that a slow second
    of a shared machine slows both. One callback for all of it: Lightning calls every callback at each
    of a step's hooks, ~15 us a callback a step on CPU, and the clock must not add to what it times."""

    def __init__(self, plain: PlainLoop | None = None) -> None:
        self.plain = plain
        self.plain_epochs: list[float] = []
        self.epochs: list[float] = []
        self.fit_seconds = 0.0

    def on_train_start(self, trainer, pl_module) -> None:
        self._fit_start = time.perf_counter()

    def on_train_end(self, trainer, pl_module) -> None:
        self.fit_seconds = time.perf_counter() - self._fit_start

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._left_out = 0.0  # seconds spent in (b) during this epoch of the fit
        if self.plain is not None:
            self.plain.start_epoch(trainer.current_epoch)
        self._epoch_start = self._now()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if self.plain is not None:
            start = self._now()  # on a GPU, once the fit's steps queued so far are done: the fit's time
            self.plain.step()
            self._left_out += self._now() - start

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.epochs.append(self._now() - self._epoch_start - self._left_out)
        if self.plain is not None:
            self.plain_epochs.append(self.plain.finish_epoch())

    def _now(self) -> float:
        return time.perf_counter() if self.plain is None else self.plain.clock()


def _fit_and_test(
    cli_args: list[str], args: argparse.Namespace, root: Path, clock: FitClock
) -> tuple[float, int]:
    common = [
        f"--trainer.default_root_dir={root}",
        f"--trainer.enable_progress_bar={args.progress_bar}",
        f"--data.source.root={args.data_dir}",
        f"--data.val_size={args.val_size}",
        *(f"--{setting}" for setting in args.set),
    ]
    cli = FashionLightningCLI(args=["fit", *cli_args, *common], trainer_defaults={"callbacks": [clock]})
    results = cli.trainer.test(cli.model, datamodule=cli.datamodule, ckpt_path="best", verbose=False)
    return results[0]["test/acc"], len(cli.datamodule.train_set)


@torch.no_grad()
def _accuracy(net: torch.nn.Module, batches, prepare: Callable, device: torch.device) -> float:
    net.eval()
    correct = total = 0
    for images, labels in batches:
        images, labels = images.to(device), labels.to(device)
        correct += (net(prepare(images)).argmax(dim=1) == labels).sum().item()
        total += len(labels)
    net.train()
    return correct / total


def _row(name: str, n_train: int, epoch_seconds: list[float], accuracy: float) -> dict:
    """Per-epoch figures from the median epoch and from the fastest one.

    On a shared (virtual) machine the same epoch can take 25% longer from one minute to the next;
    the fastest epoch is the least disturbed measure of what the code itself costs (as ``timeit``
    takes the minimum), the median is what a run can expect.
    """
    median, fastest = statistics.median(epoch_seconds), min(epoch_seconds)
    return {
        "run": name,
        "n": n_train,
        "epochs": epoch_seconds,
        "median": median,
        "fastest": fastest,
        "test acc": accuracy,
    }


def loops_table(rows: list[dict]) -> list[dict]:
    return [
        {
            "run": row["run"],
            "images/s (median)": f"{row['n'] / row['median']:,.0f}",
            "s/epoch (median)": f"{row['median']:.2f}",
            "images/s (fastest epoch)": f"{row['n'] / row['fastest']:,.0f}",
            "s/epoch (fastest)": f"{row['fastest']:.2f}",
            "test acc": f"{row['test acc']:.2%}",
        }
        for row in rows
    ]


def ratios(notes: dict, plain: dict, fit: dict, measure: str) -> str:
    def speed(row: dict) -> float:
        return row["n"] / row[measure]

    return (
        f"{measure} epochs: (b)/(a) images/s {speed(plain) / speed(notes):.2f}x, "
        f"(c)/(a) images/s {speed(fit) / speed(notes):.2f}x, "
        f"Lightning overhead (c) vs (b) per epoch {fit[measure] / plain[measure] - 1:+.1%}"
    )


def paired_overhead(plain_epochs: list[float], fit: dict, what: str) -> str:
    """The least noisy measure: each epoch of a Lightning fit against the epoch of (b) run just before it."""
    pairs = [c / b - 1 for b, c in zip(plain_epochs, fit["epochs"], strict=True)]
    return (
        f"{what}, median over {len(pairs)} pairs of epochs run side by side: "
        f"{statistics.median(pairs):+.1%} (pairs from {min(pairs):+.1%} to {max(pairs):+.1%})"
    )


def project_overhead(plain: dict, fit: dict, bare_plain_epochs: list[float], bare: dict) -> list[float]:
    """What the project adds to Lightning's own loop: (c) against (c0), each epoch first measured against
    the epoch of (b) run just before it, so that the two runs' slow minutes cancel."""
    pairs = zip(plain["epochs"], fit["epochs"], bare_plain_epochs, bare["epochs"], strict=True)
    return [(c / b) / (c0 / b0) - 1 for b, c, b0, c0 in pairs]


def project_overheads(repeats: list[tuple]) -> str:
    """``project_overhead`` of each repeat of (c) and (c0), and their median: the fits of one repeat run
    a minute apart, and a neighbour's load that comes or goes between them moves that repeat alone."""
    each = [project_overhead(*repeat) for repeat in repeats]
    ratios = each[0]
    first = (
        f"What the project adds, (c) vs (c0), median over {len(ratios)} epochs each against its paired (b): "
        f"{statistics.median(ratios):+.1%} (from {min(ratios):+.1%} to {max(ratios):+.1%})"
    )
    if len(each) == 1:
        return first
    medians = [statistics.median(ratios) for ratios in each]
    return (
        f"{first} in the first of {len(each)} repeats; median of the repeats' medians: "
        f"{statistics.median(medians):+.1%} (each: {', '.join(f'{m:+.1%}' for m in medians)})"
    )


def markdown(rows: list[dict]) -> str:
    header = list(rows[0])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(row[key]) for key in header) + " |" for row in rows])


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ", no GPU"
    return (
        f"{cpu} ({torch.backends.cpu.get_cpu_capability()}), {torch.get_num_threads()} torch threads{gpu}; "
        f"Python {platform.python_version()}, "
        f"torch {torch.__version__}, lightning {lightning.__version__}; {datetime.date.today()}"
    )


def at_least_one(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"a whole number of 1 or more, not {value}")
    return int(value)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", default="data", help="the project's data folder (see `make data`)")
    parser.add_argument("--epochs", type=int, default=10, help="epochs for (a), (b) and (c)")
    parser.add_argument("--batch-size", type=int, default=128, help="batch size of (b) and (c)")
    parser.add_argument("--lr", type=float, default=0.01, help="SGD learning rate of (b) and (c)")
    parser.add_argument(
        "--val-size", type=int, default=5000, help="held-out training images for (b), (c), configs"
    )
    parser.add_argument(
        "--precision",
        default=precision_for_this_cpu(SLOW, "auto", insisted=False)[0],
        choices=[SLOW, INSTEAD],
        help="precision of (b) and (c); by default bf16-mixed, but 32-true on a CPU without AVX-512, as "
        "the CLI chooses for a config's bf16-mixed",
    )
    parser.add_argument(
        "--repeats",
        type=at_least_one,
        default=1,
        help="run (c) and (c0) this many times, taking turns, and give what the project adds in each and "
        "their median (the tables show the first)",
    )
    parser.add_argument("--skip-loops", action="store_true", help="only run --configs")
    parser.add_argument(
        "--configs", nargs="*", default=[], help="configs to train and test (time to accuracy)"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra CLI setting for (c) and the configs, e.g. --set trainer.max_epochs=1",
    )
    parser.add_argument(
        "--progress-bar",
        default="false",
        choices=["true", "false"],
        help="show Lightning's progress bar in (c0), (c) and the configs",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    FashionMNIST(args.data_dir).prepare()  # find, copy or download the files once
    loops, config_rows = None, []
    with tempfile.TemporaryDirectory(prefix="benchmark-") as tmp:
        if not args.skip_loops:
            torch.manual_seed(0)
            notes = notes_loop(args.data_dir, args.epochs)
            repeats = []
            for _ in range(args.repeats):
                plain, fit = plain_and_lightning(args, Path(tmp), device)
                bare, bare_plain_epochs = bare_lightning(args, device)
                repeats.append((plain, fit, bare_plain_epochs, bare))
            plain, fit, bare_plain_epochs, bare = repeats[0]
            loops = notes, plain, bare, fit
        for config in args.configs:
            config_rows.append(config_run(config, args, Path(tmp)))
    print(f"\nMachine: {machine()}")
    command = ["python", "scripts/benchmark.py", *(argv if argv is not None else sys.argv[1:])]
    print("Command: " + " ".join(command))
    if loops:
        settings = f"{args.precision}, channels-last"
        print(f"\n{args.epochs} epochs of the notes' DropoutNet; (b), (c0), (c): {settings}\n")
        print(markdown(loops_table(list(loops))))
        print("\n" + ratios(notes, plain, fit, "fastest"))
        print(ratios(notes, plain, fit, "median"))
        print(paired_overhead(plain["epochs"], fit, "Lightning overhead (c) vs (b)"))
        print(paired_overhead(bare_plain_epochs, bare, "Lightning's own loop (c0) vs (b)"))
        print(project_overheads(repeats))
    if config_rows:
        print("\nConfigs as given; fit s = training with per-epoch validation; test = best checkpoint:\n")
        print(markdown(config_rows))


if __name__ == "__main__":
    main()
