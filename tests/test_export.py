"""fashion-lightning-export: ONNX and TorchScript files that agree with the Lightning model."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch
from tiny_idx import write_tiny_fashion_mnist

from fashion_lightning.cli import FashionLightningCLI
from fashion_lightning.data import FashionMNIST
from fashion_lightning.export import main as export
from fashion_lightning.export import sidecar_path
from fashion_lightning.models import ImageClassifier
from fashion_lightning.models import test_time_augmentation as tta

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """fast.yaml's ConvBNNet (batch norm, channels-last, bf16 training), 2 epochs on tiny data."""
    tmp = tmp_path_factory.mktemp("export")
    data_dir = write_tiny_fashion_mnist(tmp / "data")
    args = [
        "fit",
        f"--config={REPO / 'configs/fast.yaml'}",
        f"--data.source.root={data_dir}",
        "--data.val_size=40",
    ]
    args += [
        "--trainer.max_epochs=2",
        f"--trainer.default_root_dir={tmp / 'runs'}",
        "--pictures.every_n_epochs=0",
    ]
    FashionLightningCLI(
        args=[*args, "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]
    )
    return tmp / "runs" / "version_0" / "checkpoints" / "last.ckpt"


def lightning_probabilities(checkpoint: Path, images: torch.Tensor) -> torch.Tensor:
    model = ImageClassifier.load_from_checkpoint(checkpoint, map_location="cpu").eval()
    with torch.no_grad():
        return model(images).softmax(dim=1)


@pytest.mark.real_data
@pytest.mark.parametrize("kind", ["onnx", "torchscript"])
def test_exports_agree_with_the_lightning_model_on_real_test_images(
    kind, checkpoint, real_data_dir, tmp_path, capsys
):
    out = tmp_path / ("model.onnx" if kind == "onnx" else "model.pt")
    export([f"--ckpt_path={checkpoint}", f"--format={kind}", f"--out={out}"])
    assert capsys.readouterr().out.split() == [str(out), str(sidecar_path(out))]
    test = FashionMNIST(str(real_data_dir)).load(train=False)
    images = test.images[:500]  # a batch size other than the export's example
    pixels = images.float() / 255  # the exported model's input: ToTensor's scale
    expected = lightning_probabilities(checkpoint, images)
    classes = list(test.classes)
    if kind == "onnx":
        onnxruntime = pytest.importorskip("onnxruntime")
        session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        (got,) = session.run(["probabilities"], {"images": pixels.numpy()})
        got = torch.from_numpy(got)
        assert json.loads(session.get_modelmeta().custom_metadata_map["class_names"]) == classes
    else:
        extra = {"class_names.json": ""}
        model = torch.jit.load(str(out), _extra_files=extra)
        got = model(pixels)
        assert json.loads(extra["class_names.json"]) == classes
    assert got.shape == (500, 10)
    assert (got - expected).abs().max() < 1e-4
    sidecar = json.loads(sidecar_path(out).read_text())
    assert (
        sidecar["class_names"] == classes and sidecar["input"] == "float32 [N, 1, 28, 28], pixels in [0, 1]"
    )
    assert sidecar["input_contract"]["size"] == [28, 28]


@pytest.mark.parametrize("kind", ["onnx", "torchscript"])
@pytest.mark.parametrize(
    ("flags", "views"),
    [
        ([], tta.TestTimeAugmentation()),
        (["--tta_hflip", "--tta_shifts=1"], tta.TestTimeAugmentation(True, 1)),
    ],
    ids=["plain", "mirrored and moved views"],
)
def test_test_time_augmentation_is_built_in_only_when_asked(kind, flags, views, checkpoint, tmp_path):
    """The JSON says which. On random images, in a batch of another size than the export's example."""
    out = tmp_path / ("model.onnx" if kind == "onnx" else "model.pt")
    export([f"--ckpt_path={checkpoint}", f"--format={kind}", f"--out={out}", *flags])
    images = torch.randint(
        0, 256, (7, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )
    model = ImageClassifier.load_from_checkpoint(checkpoint, map_location="cpu").eval()
    model.test_time_augmentation = views
    with torch.no_grad():
        expected = model.evaluate(images).softmax(dim=1)
    pixels = images.float() / 255
    if kind == "onnx":
        onnxruntime = pytest.importorskip("onnxruntime")
        session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        got = torch.from_numpy(session.run(["probabilities"], {"images": pixels.numpy()})[0])
    else:
        got = torch.jit.load(str(out))(pixels)
    assert (got - expected).abs().max() < 1e-4
    sidecar = json.loads(sidecar_path(out).read_text())
    assert sidecar["test_time_augmentation"] == {"hflip": views.hflip, "shifts": views.shifts}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ckpt_path=best"], "--ckpt_path best needs --root"),
        (["--ckpt_path=missing.ckpt"], "checkpoint missing.ckpt does not exist"),
    ],
)
def test_bad_checkpoints_get_a_clear_message(args, message, tmp_path):
    with pytest.raises(SystemExit, match=message):
        export([*args, f"--out={tmp_path / 'model.onnx'}"])


def test_a_file_that_is_no_checkpoint_gets_a_clear_message(tmp_path):
    broken = tmp_path / "broken.ckpt"
    broken.write_bytes(b"not a checkpoint")
    with pytest.raises(
        SystemExit, match="cannot read checkpoint .*broken.ckpt .*it is damaged or not a Lightning checkpoint"
    ) as ended:
        export([f"--ckpt_path={broken}", f"--out={tmp_path / 'model.onnx'}"])
    assert "weights_only" not in str(ended.value)  # torch's advice for trusted pickles does not apply
    assert not (tmp_path / "model.onnx").exists()


def test_an_export_never_overwrites_a_checkpoint(checkpoint, tmp_path):
    saved = tmp_path / "saved.ckpt"
    saved.write_bytes(checkpoint.read_bytes())
    for out in (saved, tmp_path / "other.ckpt"):
        with pytest.raises(SystemExit, match="would overwrite a checkpoint"):
            export([f"--ckpt_path={saved}", "--format=torchscript", f"--out={out}"])
    assert saved.read_bytes() == checkpoint.read_bytes() and not (tmp_path / "other.ckpt").exists()


def test_an_export_overwrites_an_earlier_export_and_no_other_file(checkpoint, tmp_path):
    out = tmp_path / "model.pt"
    export([f"--ckpt_path={checkpoint}", "--format=torchscript", f"--out={out}"])
    export([f"--ckpt_path={checkpoint}", "--format=torchscript", f"--out={out}"])  # written again
    photo = tmp_path / "photo.png"
    photo.write_bytes(b"a photo")
    refusal = f"--out {photo} exists and is no earlier export .it has no photo.png.json beside it"
    with pytest.raises(SystemExit, match=refusal):
        export([f"--ckpt_path={checkpoint}", "--format=onnx", f"--out={photo}"])
    assert photo.read_bytes() == b"a photo"


def test_the_format_follows_the_out_files_name_and_a_mismatch_is_refused(checkpoint, tmp_path):
    export([f"--ckpt_path={checkpoint}", f"--out={tmp_path / 'model.pt'}"])  # no --format: TorchScript
    assert json.loads((tmp_path / "model.pt.json").read_text())["format"] == "torchscript"
    with warnings.catch_warnings():  # torch.jit is deprecated, but it is the format asked for
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.load(tmp_path / "model.pt")
    with pytest.raises(SystemExit, match="--out .*model.onnx names a onnx file but --format is torchscript"):
        export([f"--ckpt_path={checkpoint}", "--format=torchscript", f"--out={tmp_path / 'model.onnx'}"])
    assert not (tmp_path / "model.onnx").exists()


def test_each_export_in_a_folder_keeps_its_own_json(checkpoint, tmp_path):
    pytest.importorskip("onnx")
    export([f"--ckpt_path={checkpoint}", "--format=torchscript", f"--out={tmp_path / 'model.pt'}"])
    export([f"--ckpt_path={checkpoint}", "--format=onnx", "--tta_hflip", f"--out={tmp_path / 'model.onnx'}"])
    plain = json.loads((tmp_path / "model.pt.json").read_text())["test_time_augmentation"]
    mirrored = json.loads((tmp_path / "model.onnx.json").read_text())["test_time_augmentation"]
    assert (plain["hflip"], mirrored["hflip"]) == (False, True)


def test_the_json_names_the_checkpoint_exported(checkpoint, tmp_path):
    """Exports of a run's best and last checkpoints are told apart by their JSON, whatever their names."""
    out = tmp_path / "model.pt"
    export([f"--ckpt_path={checkpoint}", "--format=torchscript", f"--out={out}"])
    saved = torch.load(checkpoint, map_location="cpu", weights_only=False)
    source = json.loads(sidecar_path(out).read_text())["checkpoint"]
    assert source["path"] == str(checkpoint.resolve())
    assert (source["epoch"], source["step"]) == (saved["epoch"], saved["global_step"])
