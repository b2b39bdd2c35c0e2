"""ODIN scoring: batched equals one image at a time, the sign rule, frozen weights, file format."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from oodbench.networks.registry import ODIN_MEAN, ODIN_STD
from oodbench.scoring import odin_scoring

STD = torch.tensor(ODIN_STD).view(1, 3, 1, 1)


@pytest.fixture(scope="module")
def images():
    return torch.rand(12, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def release_score(net, x, temperature, epsilon, sign=1.0, divide_by_std=True,
                  temperature_in_loss=True):
    """One image, spelled out as SPEC-odin.md describes it (an independent reference); the
    keyword arguments make the deliberate mistakes the test must be able to see."""
    x = x.clone().requires_grad_(True)
    logits = net(x)
    probs = F.softmax(logits.detach(), 1)[0]
    label = probs.argmax().view(1)
    F.cross_entropy(logits / (temperature if temperature_in_loss else 1), label).backward()
    signed = (torch.ge(x.grad, 0).float() - 0.5) * 2
    perturbed = x.detach() - sign * epsilon * signed / (STD if divide_by_std else 1)
    odin = F.softmax(net(perturbed) / temperature, 1)[0].max()
    return probs.max().item(), odin.item(), label.item()


TOLERANCE = 1e-5
MISTAKES = {"perturbation reversed": dict(sign=-1.0), "no division by std": dict(
    divide_by_std=False), "no T in the loss": dict(temperature_in_loss=False)}


def reference(net, images, temperature, epsilon, **mistake):
    normalised = (images - torch.tensor(ODIN_MEAN).view(1, 3, 1, 1)) / STD
    return np.array([release_score(net, normalised[i:i + 1], temperature, epsilon, **mistake)
                     for i in range(len(images))])


@pytest.mark.parametrize("temperature, epsilon", [(10, 0.004), (2, 0.002), (1000, 0.0014)])
def test_batched_scores_equal_the_reference(small_net, images, temperature, epsilon):
    dataset = TensorDataset(images, torch.arange(len(images)))
    batched = odin_scoring.score_dataset(small_net, dataset, ODIN_MEAN, ODIN_STD, temperature,
                                         epsilon, "cpu", batch_size=5)
    expected = reference(small_net, images, temperature, epsilon)
    assert np.abs(batched.baseline - expected[:, 0]).max() <= TOLERANCE
    assert np.abs(batched.odin - expected[:, 1]).max() <= TOLERANCE
    assert np.array_equal(batched.predictions, expected[:, 2])


@pytest.mark.parametrize("temperature, epsilon", [(10, 0.004), (2, 0.002)])
def test_the_tolerance_sees_each_mistake(small_net, images, temperature, epsilon):
    """The margin: every deliberate mistake (and no perturbation at all) moves some ODIN
    score by at least 100x the tolerance of the test above, so that test would fail."""
    right = reference(small_net, images, temperature, epsilon)[:, 1]
    for name, mistake in {**MISTAKES, "no perturbation": {}}.items():
        wrong = reference(small_net, images, temperature, 0.0 if not mistake else epsilon,
                          **mistake)[:, 1]
        assert np.abs(right - wrong).max() >= 100 * TOLERANCE, name


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
    odin_scoring.odin_batch(Spy().eval(), x, 1000, 0.01, STD)
    shift = seen["inputs"][1] - seen["inputs"][0]
    assert torch.allclose(shift, (-0.01 / STD).expand_as(shift))


def test_epsilon_zero_is_temperature_scaling_only(small_net):
    x = torch.randn(4, 3, 32, 32)
    _, odin, _ = odin_scoring.odin_batch(small_net, x, 1000, 0.0, STD)
    expected = F.softmax(small_net(x) / 1000, 1).max(1).values
    assert torch.allclose(odin, expected, atol=1e-7)


def test_weights_get_no_gradient(small_net):
    odin_scoring.odin_batch(small_net, torch.randn(2, 3, 32, 32), 1000, 0.0014, STD)
    assert all(p.grad is None and not p.requires_grad for p in small_net.parameters())
    assert not small_net.training


def test_score_files_in_release_format(tmp_path):
    def scores(baseline, odin):
        n = len(odin)
        return odin_scoring.Scores(np.array(baseline, np.float32), np.array(odin, np.float32),
                                   np.zeros(n, int), np.zeros(n, int))
    in_scores, out_scores = scores([0.9, 0.5], [0.1001, 0.10002]), scores([0.3], [0.1])
    odin_scoring.write_scores(tmp_path, 1000, 0.0014, in_scores, out_scores)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "confidence_Base_In.txt", "confidence_Base_Out.txt",
        "confidence_Our_In.txt", "confidence_Our_Out.txt"]
    assert (tmp_path / "confidence_Our_In.txt").read_text() == \
        "1000, 0.0014, 0.1001\n1000, 0.0014, 0.10002\n"
    assert (tmp_path / "confidence_Base_In.txt").read_text() == \
        "1000, 0.0014, 0.9\n1000, 0.0014, 0.5\n"
    assert (tmp_path / "confidence_Our_Out.txt").read_text() == "1000, 0.0014, 0.1\n"
    assert (tmp_path / "confidence_Base_Out.txt").read_text() == "1000, 0.0014, 0.3\n"
    odin_scoring.write_scores(tmp_path, 1000, 0.0, in_scores, out_scores)
    assert (tmp_path / "confidence_Base_In.txt").read_text().startswith("1000, 0.0, 0.9\n")


def test_padding_last_batch_changes_no_score(small_net):
    data = TensorDataset(torch.rand(7, 3, 32, 32, generator=torch.Generator().manual_seed(2)),
                         torch.arange(7))
    plain = odin_scoring.score_dataset(small_net, data, ODIN_MEAN, ODIN_STD, 1000, 0.0014, "cpu", 3)
    padded = odin_scoring.score_dataset(small_net, data, ODIN_MEAN, ODIN_STD, 1000, 0.0014, "cpu",
                                        3, static_shape=True)
    assert len(padded) == 7 and np.allclose(plain.odin, padded.odin, atol=1e-7)
    assert np.array_equal(padded.labels, np.arange(7))
