"""The README's "Make it yours", proven: a data set and a net of one's own, written in this file alone,
go through fit, test, predict and export by the CLI, with no change to any file of the package."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from fashion_lightning.cli import FashionLightningCLI, main
from fashion_lightning.data import ImageSource, LabelledImages
from fashion_lightning.export import main as export
from fashion_lightning.models import ImageClassifier

REPO = Path(__file__).resolve().parents[1]
COLOURS = {"red": (220, 40, 40), "green": (40, 200, 60), "blue": (50, 70, 230)}
QUIET = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]


class ColouredStripes(ImageSource):
    """A data set of one's own: 3x24x32 RGB images of a stripe whose colour is the class, on noise.

    Args:
        count: training images (the test split has a quarter as many).
    """

    def __init__(self, count: int = 240) -> None:
        self.count = count

    def load(self, train: bool) -> LabelledImages:
        generator = torch.Generator().manual_seed(0 if train else 1)
        count = self.count if train else self.count // 4
        labels = torch.arange(count) % len(COLOURS)
        images = torch.randint(0, 90, (count, 3, 24, 32), generator=generator, dtype=torch.uint8)
        for image, label in zip(images, labels.tolist(), strict=True):
            top = int(torch.randint(0, 16, (1,), generator=generator))
            image[:, top : top + 8, :] = torch.tensor(list(COLOURS.values())[label])[:, None, None]
        return LabelledImages(images, labels, list(COLOURS))


class TwoLayerNet(nn.Module):
    """A net of one's own: the same first three arguments as the package's nets, then its settings."""

    def __init__(self, in_channels: int, image_size: tuple[int, int], num_classes: int, width: int = 8):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(width, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def test_a_data_set_and_a_net_of_ones_own_train_test_predict_and_export(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    yours = [
        "--data.source=test_make_it_yours.ColouredStripes",
        "--model.net=test_make_it_yours.TwoLayerNet",
        "--model.net.width=12",
        "--data.val_size=0.2",
        "--data.batch_size=16",
    ]
    recipe = ["--config", str(REPO / "configs/fast.yaml"), "--trainer.max_epochs=6"]
    recipe += ["--trainer.precision=32-true"]
    FashionLightningCLI(args=["fit", *recipe, *yours, "--trainer.default_root_dir=runs", *QUIET])
    checkpoint = Path("runs/version_0/checkpoints/last.ckpt")
    assert checkpoint.is_file()

    main(["test", *recipe, *yours, "--trainer.default_root_dir=runs", "--ckpt_path=best", *QUIET])
    assert "Test Accuracy of green:" in capsys.readouterr().out

    # predict photos with the checkpoint alone: drawn stripes of each colour, larger than the images
    Path("photos").mkdir()
    for name, colour in COLOURS.items():
        photo = np.full((120, 160, 3), 30, dtype=np.uint8)
        photo[40:80] = colour
        Image.fromarray(photo).save(f"photos/{name}.png")
    main(["predict", f"--ckpt_path={checkpoint}", "--data.predict_images=photos", *QUIET])
    with open("predictions.csv") as file:
        predicted = {Path(row["path"]).stem: row["predicted"] for row in csv.DictReader(file)}
    assert predicted == {name: name for name in COLOURS}

    # exports take the model's own input, 3x24x32, and agree with it
    model = ImageClassifier.load_from_checkpoint(checkpoint, map_location="cpu").eval()
    images = ColouredStripes().load(train=False).images[:9]
    with torch.no_grad():
        expected = model(images).softmax(dim=1)
    export([f"--ckpt_path={checkpoint}", "--format=torchscript", "--out=model.pt"])
    assert (
        json.loads(Path("model.pt.json").read_text())["input"] == "float32 [N, 3, 24, 32], pixels in [0, 1]"
    )
    got = torch.jit.load("model.pt")(images.float() / 255)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
    onnxruntime = pytest.importorskip("onnxruntime")
    export([f"--ckpt_path={checkpoint}", "--format=onnx", "--out=model.onnx"])
    session = onnxruntime.InferenceSession("model.onnx", providers=["CPUExecutionProvider"])
    (probabilities,) = session.run(["probabilities"], {"images": (images.float() / 255).numpy()})
    torch.testing.assert_close(torch.from_numpy(probabilities), expected, atol=1e-5, rtol=1e-4)


def test_every_module_of_the_package_imports_first_on_its_own():
    """A script of one's own may import any piece first (``from fashion_lightning.models import
    ConvBNNet``); an import cycle fails only in the order that meets it. So each module goes first,
    with the package's modules forgotten before it (torch and Lightning stay loaded: the cycles to
    find are the package's own)."""
    package = REPO / "fashion_lightning"
    names = sorted(
        ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        for path in package.rglob("*.py")
        if path.name != "__main__.py" and "sweep" not in path.parts  # the sweep needs its extra
    )
    done = subprocess.run([sys.executable, "-c", IMPORT_EACH_FIRST, *names], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == names


IMPORT_EACH_FIRST = """
import importlib, sys
for name in sys.argv[1:]:
    for loaded in [module for module in sys.modules if module.split(".")[0] == "fashion_lightning"]:
        del sys.modules[loaded]
    importlib.import_module(name)
    print(name)
"""
