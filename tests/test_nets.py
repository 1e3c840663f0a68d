"""The networks, as plain nn.Modules that take their input's shape and class count."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fashion_lightning.data import InputContract
from fashion_lightning.errors import ConfigError
from fashion_lightning.models import BaselineNet, ConvBNNet, DropoutNet, ImageClassifier
from fashion_lightning.models.nets import ConvBeforePool


@pytest.mark.parametrize("net_class, parameters", [(BaselineNet, 6_930), (DropoutNet, 27_480)])
def test_the_notes_nets_keep_their_size_on_fashion_mnist(net_class, parameters):
    # conv1 100 + conv2 1,820, then 500x10+10 (baseline) or 500x50+50 and 50x10+10 (dropout)
    net = net_class(1, (28, 28), 10)
    assert sum(p.numel() for p in net.parameters()) == parameters
    assert net(torch.randn(4, 1, 28, 28)).shape == (4, 10)


@pytest.mark.parametrize("net_class", [BaselineNet, DropoutNet, ConvBNNet])
@pytest.mark.parametrize("shape, classes", [((3, 64, 64), 5), ((3, 32, 48), 2), ((1, 16, 16), 26)])
def test_every_net_fits_any_image_shape_and_class_count(net_class, shape, classes):
    net = net_class(shape[0], shape[1:], classes)
    assert net(torch.randn(2, *shape)).shape == (2, classes)


@pytest.mark.parametrize("net_class", [BaselineNet, DropoutNet])
def test_the_notes_nets_compute_the_notes_convolution_relu_then_pooling(net_class):
    net = net_class(1, (28, 28), 10)
    first, second = (layer for layer in net.features if isinstance(layer, nn.Conv2d))
    images = torch.randn(8, 1, 28, 28)
    maps = F.max_pool2d(F.relu(second(F.max_pool2d(F.relu(first(images)), 2))), 2)
    assert torch.equal(net.features(images), maps.flatten(1))


@pytest.mark.parametrize("size, trimmed", [((28, 28), 1), ((27, 20), 3), ((32, 32), 0)])
def test_convbnnet_leaves_out_only_the_rows_and_columns_its_pooling_drops(size, trimmed):
    net = ConvBNNet(1, size, 10, depth=2).eval()
    padded = ConvBNNet(1, size, 10, depth=2).eval()  # every convolution as nn.Conv2d(padding=1)
    for i, layer in enumerate(padded.features):
        if isinstance(layer, ConvBeforePool):
            padded.features[i] = nn.Conv2d(layer.in_channels, layer.out_channels, 3, padding=1, bias=False)
    for layer in net.features:  # running statistics away from 0 and 1, so that every value counts
        if isinstance(layer, nn.BatchNorm2d):
            layer.running_mean.uniform_(-1, 1)
            layer.running_var.uniform_(0.5, 2)
    padded.load_state_dict(net.state_dict())
    images = torch.randn(4, 1, *size)
    assert sum(isinstance(layer, ConvBeforePool) for layer in net.features) == trimmed
    torch.testing.assert_close(net(images), padded(images))


@pytest.mark.parametrize("net_class", [BaselineNet, DropoutNet, ConvBNNet])
def test_images_too_small_for_a_net_are_refused_in_one_line(net_class):
    with pytest.raises(ConfigError, match=r"(cannot take 1x6x6 images|too often for 6x6).*larger images"):
        net_class(1, (6, 6), 10)


def test_sizing_a_net_leaves_its_batch_norm_statistics_untouched():
    net = ConvBNNet(3, (32, 32), 4)
    batch_norm = net.features[2]
    assert torch.equal(batch_norm.running_var, torch.ones_like(batch_norm.running_var)) and net.training


def test_relu_logits_reproduces_the_notes_nonnegative_scores():
    torch.manual_seed(0)
    images = torch.randn(64, 1, 28, 28)
    plain, notes = BaselineNet(1, (28, 28), 10), BaselineNet(1, (28, 28), 10, relu_logits=True)
    notes.load_state_dict(plain.state_dict())
    assert (plain(images) < 0).any()
    torch.testing.assert_close(notes(images), plain(images).clamp(min=0))


def test_dropout_is_active_in_training_only():
    torch.manual_seed(0)
    net, images = DropoutNet(1, (28, 28), 10), torch.randn(8, 1, 28, 28)
    net.eval()
    torch.testing.assert_close(net(images), net(images))
    net.train()
    assert not torch.equal(net(images), net(images))


class LazyNet(torch.nn.Module):
    """A net of one's own whose linear layer takes its size from the first input (``nn.LazyLinear``)."""

    def __init__(self, in_channels: int, image_size: tuple[int, int], num_classes: int) -> None:
        super().__init__()
        self.layers = torch.nn.Sequential(
            torch.nn.Conv2d(in_channels, 4, 3), torch.nn.Flatten(), torch.nn.LazyLinear(num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def test_a_net_with_lazy_layers_is_sized_from_the_input_contract():
    contract = InputContract(
        classes=("a", "b", "c"), channels=3, size=(12, 10), mean=(0.5,) * 3, std=(0.2,) * 3
    )
    model = ImageClassifier(net=LazyNet, input_contract=contract, channels_last=True)
    assert model.net.layers[2].weight.shape == (3, 4 * 10 * 8) and model.net.training
    assert model(torch.zeros(2, 3, 12, 10, dtype=torch.uint8)).shape == (2, 3)


class TwoArguments(torch.nn.Module):
    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.linear = torch.nn.LazyLinear(num_classes)


class OneScoreShort(torch.nn.Module):
    def __init__(self, in_channels: int, image_size: tuple[int, int], num_classes: int) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(in_channels * image_size[0] * image_size[1], num_classes - 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.linear(images.flatten(1))


class NoParameters(torch.nn.Module):
    def __init__(self, in_channels: int, image_size: tuple[int, int], num_classes: int) -> None:
        super().__init__()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images.flatten(1)[:, :10]


@pytest.mark.parametrize(
    ("net", "refusal"),
    [
        (TwoArguments, r"model.net: .*takes 3 positional arguments but 4 were given\. A net takes \(in_"),
        (torch.nn.ReLU, r"model.net: .*positional arguments but 4 were given\. A net takes \(in_"),
        (OneScoreShort, r"model.net: OneScoreShort gives 9 numbers for an image, but the data has 10"),
        (NoParameters, r"model.net: NoParameters has no trainable parameters"),
    ],
)
def test_a_net_that_breaks_the_contract_is_refused_in_one_line(net, refusal):
    """Before, these ended in tracebacks at the first step (a target out of bounds, a metric's shape)
    or blamed the optimizer (an empty parameter list)."""
    contract = InputContract(
        classes=[str(n) for n in range(10)], channels=1, size=(28, 28), mean=(0.5,), std=(0.2,)
    )
    with pytest.raises(ConfigError, match=refusal):
        ImageClassifier(net=net, input_contract=contract)
