"""ODIN scoring: batched equals one image at a time, the sign rule, frozen weights, file format."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

import calData
from densenet import DenseNet3
from models import ODIN_MEAN, ODIN_STD

STD = torch.tensor(ODIN_STD).view(1, 3, 1, 1)


@pytest.fixture(scope="module")
def small_net():
    torch.manual_seed(0)
    net = DenseNet3(16, 10)   # 2 bottleneck layers a block: fast, same code paths
    for m in net.modules():   # non-trivial BN statistics, as in a trained net
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    return net.eval().requires_grad_(False)


def release_score(net, x, temperature, epsilon):
    """One image, spelled out as SPEC-odin.md describes it (an independent reference)."""
    x = x.clone().requires_grad_(True)
    logits = net(x)
    probs = F.softmax(logits.detach(), 1)[0]
    label = probs.argmax().view(1)
    F.cross_entropy(logits / temperature, label).backward()
    signed = (torch.ge(x.grad, 0).float() - 0.5) * 2
    perturbed = x.detach() - epsilon * signed / STD
    odin = F.softmax(net(perturbed) / temperature, 1)[0].max()
    return probs.max().item(), odin.item(), label.item()


def test_batched_scores_equal_one_image_at_a_time(small_net):
    torch.manual_seed(1)
    images = torch.rand(12, 3, 32, 32)
    dataset = TensorDataset(images, torch.arange(12))
    for temperature, epsilon in ((1000, 0.0014), (1, 0.0), (10, 0.004)):
        batched = calData.score_dataset(small_net, dataset, ODIN_MEAN, ODIN_STD, temperature,
                                        epsilon, "cpu", batch_size=5)
        normalised = (images - torch.tensor(ODIN_MEAN).view(1, 3, 1, 1)) / STD
        for i in range(len(images)):
            base, odin, label = release_score(small_net, normalised[i:i + 1], temperature, epsilon)
            assert batched.baseline[i] == pytest.approx(base, abs=1e-5)
            assert batched.odin[i] == pytest.approx(odin, abs=1e-5)
            assert batched.predictions[i] == label


def test_zero_gradient_maps_to_plus_one():
    class Flat(torch.nn.Module):   # output ignores the input: the gradient is exactly zero
        def __init__(self):
            super().__init__()
            self.bias = torch.nn.Parameter(torch.tensor([[1.0, 0.0]]), requires_grad=False)

        def forward(self, x):
            return self.bias.expand(len(x), 2) + 0 * x.sum(dim=(1, 2, 3), keepdim=True)

    seen = {}

    class Spy(Flat):
        def forward(self, x):
            seen.setdefault("inputs", []).append(x.detach().clone())
            return super().forward(x)

    x = torch.zeros(1, 3, 32, 32)
    calData.odin_batch(Spy().eval(), x, 1000, 0.01, STD)
    shift = seen["inputs"][1] - seen["inputs"][0]
    assert torch.allclose(shift, (-0.01 / STD).expand_as(shift))


def test_epsilon_zero_is_temperature_scaling_only(small_net):
    x = torch.randn(4, 3, 32, 32)
    _, odin, _ = calData.odin_batch(small_net, x, 1000, 0.0, STD)
    expected = F.softmax(small_net(x) / 1000, 1).max(1).values
    assert torch.allclose(odin, expected, atol=1e-7)


def test_weights_get_no_gradient(small_net):
    calData.odin_batch(small_net, torch.randn(2, 3, 32, 32), 1000, 0.0014, STD)
    assert all(p.grad is None and not p.requires_grad for p in small_net.parameters())
    assert not small_net.training


def test_score_files_in_release_format(tmp_path):
    scores = calData.Scores(np.array([0.9, 0.5], np.float32), np.array([0.1001, 0.10002], np.float32),
                            np.array([1, 2]), np.array([1, 2]))
    calData.write_scores(tmp_path, 1000, 0.0014, scores, scores)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "confidence_Base_In.txt", "confidence_Base_Out.txt",
        "confidence_Our_In.txt", "confidence_Our_Out.txt"]
    assert (tmp_path / "confidence_Our_In.txt").read_text() == \
        "1000, 0.0014, 0.1001\n1000, 0.0014, 0.10002\n"
    calData.write_score_file(tmp_path / "eps0.txt", 1000, 0.0, scores.baseline)
    assert (tmp_path / "eps0.txt").read_text().startswith("1000, 0.0, 0.9\n")


def test_padding_last_batch_changes_no_score(small_net):
    data = TensorDataset(torch.rand(7, 3, 32, 32), torch.arange(7))
    plain = calData.score_dataset(small_net, data, ODIN_MEAN, ODIN_STD, 1000, 0.0014, "cpu", 3)
    padded = calData.score_dataset(small_net, data, ODIN_MEAN, ODIN_STD, 1000, 0.0014, "cpu", 3,
                                   static_shape=True)
    assert len(padded) == 7 and np.allclose(plain.odin, padded.odin, atol=1e-7)
    assert np.array_equal(padded.labels, np.arange(7))
