"""``fashion-lightning-export``: a checkpoint as a standalone model, for serving without this project.

    fashion-lightning-export --ckpt_path best --root runs/fast --format onnx  # runs/fast/version_N/model.onnx
    fashion-lightning-export --ckpt_path model.ckpt --format torchscript --out model.pt
    fashion-lightning-export --ckpt_path model.ckpt --tta_hflip --tta_shifts 1  # with test-time augmentation

The exported model takes a batch of images of the shape the model was trained on, float32
``[N, C, H, W]`` with pixel values in [0, 1] (as torchvision's ``ToTensor`` gives them), normalises
them as in training, and returns class probabilities ``[N, classes]``. The model's input contract
(class names in output order, channels, size, mean and std) is written beside it as JSON
(``model.onnx`` -> ``model.onnx.json``), with the checkpoint it came from (path, epoch and step). A
run's exports share one default file, each replacing the last: give ``--out`` to keep its best and
last side by side. The class names also go into the ONNX
file's metadata and the TorchScript file. The exported model classifies each image once, whatever the
checkpoint's ``test_time_augmentation``; ``--tta_hflip`` and ``--tta_shifts N`` build mirrored and
moved copies into it (one more forward pass each), and the JSON records which. ONNX needs the optional extra:
``pip install -e '.[export]'`` in this project's folder.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
from pathlib import Path

import torch
from torch import nn

from fashion_lightning.checkpoint_io import DiskFullError, explained, write_whole
from fashion_lightning.errors import ConfigError, exit_with
from fashion_lightning.models import ImageClassifier
from fashion_lightning.models.test_time_augmentation import TestTimeAugmentation
from fashion_lightning.runs import CheckpointError, load_classifier, run_folder

INPUT, OUTPUT = "images", "probabilities"


class ProbabilityModel(nn.Module):
    """The trained net with the model's own normalisation in front and a softmax behind; with test-time
    augmentation, the mean of the views' probabilities."""

    def __init__(self, model: ImageClassifier, tta: TestTimeAugmentation) -> None:
        super().__init__()
        self.standardize = model.standardize
        self.net = model.net.to(memory_format=torch.contiguous_format).float()
        self.tta = tta

    def classify(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(self.standardize(images))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.tta(self.classify, images).softmax(dim=1)


def export(
    model: ImageClassifier,
    kind: str,
    out: Path,
    tta: TestTimeAugmentation | None = None,
    checkpoint: Path | None = None,
) -> Path:
    """Write ``out`` (and the input contract beside it); returns the JSON file's path. ``tta``: test-time
    augmentation to build in (default: none); ``checkpoint``: the file ``model`` was loaded from."""
    tta = tta or TestTimeAugmentation()
    wrapped = ProbabilityModel(model, tta).eval()
    contract = model.input_contract
    example = torch.rand(2, *contract.shape)
    out.parent.mkdir(parents=True, exist_ok=True)
    names = list(model.class_names)
    if kind == "torchscript":
        scripted = torch.jit.trace(wrapped, example)
        buffer = io.BytesIO()  # in memory first: torch's own file writer aborts the process on a full disk
        torch.jit.save(scripted, buffer, _extra_files={"class_names.json": json.dumps(names)})
        content = buffer.getvalue()
    else:
        try:
            import onnx
        except ImportError:
            raise ImportError(
                "ONNX export needs the optional extra: pip install -e '.[export]' in the project's folder"
            ) from None
        batch = torch.export.Dim("batch")
        program = torch.onnx.export(
            wrapped, (example,), input_names=[INPUT], output_names=[OUTPUT],
            dynamic_shapes={"images": {0: batch}}, dynamo=True, verbose=False,
        )  # fmt: skip
        proto = program.model_proto
        onnx.helper.set_model_props(proto, {"class_names": json.dumps(names)})
        content = proto.SerializeToString()
    write_whole(out, content)
    sidecar = sidecar_path(out)
    shape = ", ".join(map(str, contract.shape))
    description = {
        "format": kind,
        "class_names": names,
        "input": f"float32 [N, {shape}], pixels in [0, 1]",
        "test_time_augmentation": dataclasses.asdict(tta),
    }
    if checkpoint is not None:
        epoch, step = model.checkpoint_position or (None, None)
        description["checkpoint"] = {"path": str(checkpoint.resolve()), "epoch": epoch, "step": step}
    write_whole(sidecar, json.dumps({**description, "input_contract": contract.to_dict()}, indent=2).encode())
    return sidecar


def sidecar_path(out: Path) -> Path:
    """The input contract's JSON beside an exported model: ``model.onnx`` -> ``model.onnx.json``, so that
    an ONNX and a TorchScript export in one folder each keep their own."""
    return out.with_name(out.name + ".json")


SUFFIXES = {"onnx": ".onnx", "torchscript": ".pt"}


def chosen_format(given: str | None, out: Path | None) -> str:
    """``--format``, or the one ``--out``'s suffix names; refused if the two disagree, as a file named
    model.pt holding ONNX would fail where it is loaded."""
    named = {suffix: name for name, suffix in SUFFIXES.items()}.get(out.suffix.lower()) if out else None
    if given and named and given != named:
        raise ConfigError(
            f"--out {out} names a {named} file but --format is {given}: give --out with {SUFFIXES[given]}, "
            f"or --format {named}"
        )
    return given or named or "onnx"


def checked_out(out: Path, checkpoint: Path) -> Path:
    """``--out``, refused if writing it would replace the checkpoint or another one, or any file but an
    earlier export."""
    if out.suffix == ".ckpt" or out.resolve() == checkpoint.resolve():
        raise ConfigError(
            f"--out {out} would overwrite a checkpoint: give a model file such as model.onnx or model.pt"
        )
    if out.is_dir():
        raise ConfigError(f"--out {out} is a folder: give a file in it, such as {out / 'model.onnx'}")
    if out.exists() and not sidecar_path(out).exists():  # an input photo, a config, ...
        raise ConfigError(
            f"--out {out} exists and is no earlier export (it has no {sidecar_path(out).name} beside it): "
            "give another file, or remove that one first"
        )
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="fashion-lightning-export",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,  # a mistyped flag's prefix is refused, not taken for the flag it begins
    )
    parser.add_argument("--ckpt_path", required=True, help="a .ckpt file, or best/last with --root")
    parser.add_argument("--root", help="for best/last: the folder of the run folders, e.g. runs/fast")
    parser.add_argument(
        "--format",
        choices=list(SUFFIXES),
        help="default: the one --out's suffix names (.onnx, .pt), else onnx",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="the file to write (default: model.onnx or .pt in the checkpoint's run folder, or beside it)",
    )
    parser.add_argument(
        "--tta_hflip", action="store_true", help="test-time augmentation: average with the mirrored image"
    )
    parser.add_argument(
        "--tta_shifts",
        type=int,
        default=0,
        metavar="N",
        help="test-time augmentation: average with the image moved N pixels left, right, up and down",
    )
    parser.add_argument("--verbose", action="store_true", help="show a traceback on errors")
    args = parser.parse_args(argv)
    try:
        tta = TestTimeAugmentation(hflip=args.tta_hflip, shifts=args.tta_shifts)
        format_ = chosen_format(args.format, args.out)
        model, path = load_classifier(args.ckpt_path, args.root)
        folder = run_folder(path) or path.parent  # a checkpoint outside a run folder: beside it
        out = checked_out(args.out or folder / f"model{SUFFIXES[format_]}", path)
        sidecar = export(model, format_, out, tta, checkpoint=path)
    except (CheckpointError, ConfigError, DiskFullError, ImportError, OSError) as err:
        exit_with(explained(err, args.out) if isinstance(err, OSError) else err, args.verbose)
    print(f"{out}\n{sidecar}")


if __name__ == "__main__":
    main()
