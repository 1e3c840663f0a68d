"""The notes' two networks, as plain nn.Modules."""

import pytest
import torch

from fashion_lightning.models import BaselineNet, DropoutNet


@pytest.mark.parametrize("net, parameters", [(BaselineNet(), 6_930), (DropoutNet(), 27_480)])
def test_nets_map_a_batch_of_images_to_ten_scores(net, parameters):
    # conv1 100 + conv2 1,820, then 500x10+10 (baseline) or 500x50+50 and 50x10+10 (dropout)
    assert sum(p.numel() for p in net.parameters()) == parameters
    assert net(torch.randn(4, 1, 28, 28)).shape == (4, 10)


def test_relu_logits_reproduces_the_notes_nonnegative_scores():
    torch.manual_seed(0)
    images = torch.randn(64, 1, 28, 28)
    plain, notes = BaselineNet(), BaselineNet(relu_logits=True)
    notes.load_state_dict(plain.state_dict())
    assert (plain(images) < 0).any()
    torch.testing.assert_close(notes(images), plain(images).clamp(min=0))


def test_dropout_is_active_in_training_only():
    torch.manual_seed(0)
    net, images = DropoutNet(), torch.randn(8, 1, 28, 28)
    net.eval()
    torch.testing.assert_close(net(images), net(images))
    net.train()
    assert not torch.equal(net(images), net(images))
