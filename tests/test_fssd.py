"""The FSSD suite: the layer-wise detectors on networks whose layer outputs are chosen by hand,
the layer ensemble, FSSD's metrics and split, Deep Ensemble, MC Dropout, the committed
LeNets, and a small run of the benchmark's command on the real images."""
import numpy as np
import pytest
import torch

from oodbench.commands import fssd_table
from oodbench.core.paths import UserError
from oodbench.detectors import layer_ensemble
from oodbench.detectors.deep_ensemble import ensemble_score
from oodbench.detectors.fssd import FSSD, noise_inputs
from oodbench.detectors.mahalanobis_full import MahalanobisFull
from oodbench.detectors.mc_dropout import mc_dropout_score
from oodbench.networks import lenet
from oodbench.networks.densenet import DenseNet3
from oodbench.networks.registry import DENSENET_LAYERS, FeatureLayer
from oodbench.pipelines import fssd_protocol
from oodbench.scoring.features import LayerMaps
from oodbench.scoring.metrics import fpr_at_tpr, fssd_metrics


class Identity(torch.nn.Module):
    """One 'layer': the input itself, so every feature is chosen by hand."""
    def layer_maps(self, x, upto=1):
        return [x.flatten(1)]


def fitted_mahalanobis():
    # class 0 around (0, 0), class 1 around (10, 0); each class's points (+-1, 0), (0, +-1):
    # the tied ML covariance is diag(0.5, 0.5), its precision diag(2, 2)
    offsets = np.array([[1, 0], [-1, 0], [0, 1], [0, -1]], float)
    x = np.concatenate([offsets, offsets + [10, 0]])
    labels = np.repeat([0, 1], 4)
    return MahalanobisFull().fit([x], labels, 2)


def test_mahalanobis_layer_score_by_hand():
    detector = fitted_mahalanobis()
    assert torch.allclose(detector.precisions[0], 2 * torch.eye(2, dtype=torch.float64))
    x = torch.tensor([[1.0, 1.0], [9.0, 0.0]])
    # -1/2 * 2 * (1 + 1) = -2 (class 0); -1/2 * 2 * 1 = -1 (class 1 is closer)
    scores = detector.scores(Identity(), x, 0.0, None)
    assert np.allclose(scores[:, 0], [-2.0, -1.0])


def test_mahalanobis_input_processing_by_hand():
    detector = fitted_mahalanobis()
    x = torch.tensor([[1.0, 1.0], [0.0, 0.0]])
    directions = detector.directions(Identity(), x, std=0.5)
    # gradient of 1/2 d to the closest mean (0, 0) is P x = (2, 2): sign +1; a zero gradient
    # counts +1 too; the step is -sign / std
    assert torch.allclose(directions[0], torch.full((2, 2), -2.0))
    scores = detector.scores(Identity(), x, 0.1, directions)
    # x~ = x - 0.1 * 1 / 0.5 = (0.8, 0.8) -> -1/2 * 2 * 1.28; (0, 0) -> (-0.2, -0.2)
    assert np.allclose(scores[:, 0], [-1.28, -0.08])


def test_fssd_singularity_is_the_mean_noise_feature():
    detector = FSSD().fit(Identity(), (2,), seed=7, layers=1)
    authors = np.random.RandomState(7)   # as their scripts leave numpy's generator: seeded,
    authors.permutation(10000)           # then one permutation for the split
    pixels = authors.randint(0, 255, (100, 2), "uint8")
    assert np.allclose(detector.singularity[0].numpy(), ((pixels - 127.5) / 255).mean(axis=0))
    assert noise_inputs((2,), 7).shape == (100, 2)


def test_fssd_score_and_input_processing_by_hand():
    detector = FSSD()
    detector.layers, detector.singularity = 1, [torch.zeros(2)]
    x = torch.tensor([[3.0, 4.0], [0.0, -1.0]])
    assert np.allclose(detector.scores(Identity(), x, 0.0, None)[:, 0], [5.0, 1.0])
    # gradient of -mean ||x_i||: -(x_i / ||x_i||) / 2, standardised over the whole batch
    # (unbiased std), divided by the normalisation std, added: a step towards the singularity
    g = np.array([[-0.3, -0.4], [0.0, 0.5]])
    step = (g - g.mean()) / g.std(ddof=1) / 0.5
    directions = detector.directions(Identity(), x, std=0.5)
    assert np.allclose(directions[0].numpy(), step, atol=1e-6)
    moved = x.numpy() + 0.01 * step
    assert np.allclose(detector.scores(Identity(), x, 0.01, directions)[:, 0],
                       np.linalg.norm(moved, axis=1), atol=1e-6)


def test_grid_scores_match_one_magnitude_at_a_time():
    detector = fitted_mahalanobis()
    x = torch.randn(700, 2) * 3
    grid = detector.grid_scores(Identity(), x, 1.0, [0.0, 0.05])
    direct = detector.scores(Identity(), x[512:], 0.05, detector.directions(Identity(), x[512:],
                                                                            1.0))
    assert np.allclose(grid[0.05][512:], direct)
    assert np.allclose(grid[0.0], detector.scores(Identity(), x, 0.0, None))


def test_a_network_without_layers_is_a_clear_error():
    with pytest.raises(UserError, match="FSSD scores each layer.*Linear declares none"):
        FSSD().fit(torch.nn.Linear(2, 2), (2,), seed=0)
    with pytest.raises(UserError, match="Mahalanobis scores each layer"):
        fitted_mahalanobis().grid_scores(torch.nn.Linear(2, 2), torch.zeros(3, 2), 1.0, [0.0])


class Recorder:
    """A repetition that records which images each method is scored on."""
    def __init__(self):
        self.calls = []

    def grid(self, method):
        return [0.1, 0.0]

    def scores(self, method, name, part, images, values):
        self.calls.append((method, name, part, len(images)))
        side = 1.0 if name == fssd_protocol.IN_SET else 0.0
        return {v: side + 0.1 * np.random.default_rng(len(self.calls)).random(len(images))
                for v in values}


def test_the_no_ood_variant_fits_and_chooses_on_the_validation_set_only():
    recorder = Recorder()
    ins, outs, proxy = torch.zeros(1100, 1), torch.zeros(1200, 1), torch.zeros(1050, 1)
    result = fssd_protocol.evaluate(recorder, "FSSD (TIN val)", ins, "MNIST", outs, proxy)
    ood = [(name, part, n) for method, name, part, n in recorder.calls
           if name != fssd_protocol.IN_SET]
    assert {m for m, *_ in recorder.calls} == {"FSSD"}
    assert ood == [(fssd_protocol.VALIDATION_SET, "fit", 500),
                   (fssd_protocol.VALIDATION_SET, "select", 500), ("MNIST", "test", 200)]
    assert result["AUROC"] == 1.0 and result["chosen"] == 0.1   # ties: the first of the grid
    recorder.calls.clear()
    fssd_protocol.evaluate(recorder, "FSSD", ins, "MNIST", outs)
    assert [part for _, name, part, _ in recorder.calls if name == "MNIST"] == \
        ["fit", "select", "test"]


def test_fssd_grid_standardises_each_batch_of_512():
    detector = FSSD()
    detector.layers, detector.singularity = 1, [torch.zeros(2)]
    x = torch.randn(700, 2) * 3
    grid = detector.grid_scores(Identity(), x, 1.0, [0.05])[0.05]
    for part in (slice(0, 512), slice(512, 700)):
        directions = detector.directions(Identity(), x[part], 1.0)
        assert np.allclose(grid[part], detector.scores(Identity(), x[part], 0.05, directions))
    whole = detector.scores(Identity(), x, 0.05, detector.directions(Identity(), x, 1.0))
    assert not np.allclose(grid, whole)   # the batch matters, as in the authors' code


def test_repetition_scores_are_kept_per_image_set():
    repetition = fssd_protocol.Repetition(1)
    a = torch.zeros(3, 1, 28, 28, dtype=torch.uint8)
    b = torch.full((3, 1, 28, 28), 255, dtype=torch.uint8)
    first = repetition.scores("Baseline", "X", "fit", a, [None])[None]
    second = repetition.scores("Baseline", "X", "fit", b, [None])[None]
    assert not np.allclose(first, second)
    assert np.array_equal(repetition.scores("Baseline", "X", "fit", a, [None])[None], first)


def test_hooked_layers_are_the_networks_own():
    """features.LayerMaps (hooks on the declared layers) gives the LeNet's own layer_maps, and
    the same input-processing steps; and the four DenseNet-BC layers of Lee et al.'s code."""
    net = lenet.LeNet().eval()
    hooked = LayerMaps(net, (FeatureLayer("conv1", "conv1", relu=True),
                             FeatureLayer("conv2", "conv2", relu=True),
                             FeatureLayer("fc1", "fc1", relu=True), FeatureLayer("logits", "fc2")))
    x = torch.randn(3, 1, 28, 28)
    for own, via_hooks in zip(net.layer_maps(x), hooked.layer_maps(x)):
        assert torch.equal(own, via_hooks)
    detector = FSSD().fit(net, (1, 28, 28), seed=0)
    for a, b in zip(detector.directions(net, x, 0.35), detector.directions(hooked, x, 0.35)):
        assert torch.allclose(a, b)
    densenet = DenseNet3(100, 10).eval()
    maps = LayerMaps(densenet, DENSENET_LAYERS).layer_maps(torch.randn(2, 3, 32, 32))
    shapes = [tuple(m.shape[1:]) for m in maps]
    assert shapes == [(24, 32, 32), (108, 16, 16), (150, 8, 8), (342, 8, 8)]


def test_layer_ensemble_separates_and_learns_the_sign():
    rng = np.random.default_rng(0)
    ins = np.c_[rng.normal(5, 1, 300), rng.normal(0, 1, 300)]
    outs = np.c_[rng.normal(-5, 1, 300), rng.normal(0, 1, 300)]
    for sign in (1, -1):   # in-distribution high on the first column, or low: both learnt
        regression = layer_ensemble.fit(sign * ins, sign * outs)
        p_in = layer_ensemble.score(regression, sign * ins)
        p_out = layer_ensemble.score(regression, sign * outs)
        assert fssd_metrics(p_in, p_out)["AUROC"] == 1.0
        assert (p_in > 0.5).all() and (p_out < 0.5).all()


def test_fssd_metrics_by_hand():
    ins, outs = [0.9, 0.8, 0.7, 0.6, 0.5], [0.85, 0.55, 0.3, 0.2, 0.1]
    result = fssd_metrics(ins, outs)
    assert result["AUROC"] == pytest.approx(20 / 25)
    # in-distribution ranks 1, 3, 4, 5, 7: precisions 1, 2/3, 3/4, 4/5, 5/7
    assert result["AUPRC"] == pytest.approx((1 + 2 / 3 + 3 / 4 + 4 / 5 + 5 / 7) / 5)
    # 80% TPR: threshold 0.6 accepts 4 of 5 in and one OOD score (0.85); 100%: 0.5, two
    assert result["FPR at TPR 80%"] == pytest.approx(0.2)
    assert fpr_at_tpr(ins, outs, 1.0) == pytest.approx(0.4)
    assert fpr_at_tpr(ins, outs, 0.2) == 0.0


def test_split_is_fssds_seeded_500_500_rest():
    parts = fssd_protocol.split(10000)
    order = np.random.RandomState(42).permutation(10000)
    assert [len(parts[p]) for p in ("fit", "select", "test")] == [500, 500, 9000]
    assert (np.concatenate([parts["fit"], parts["select"], parts["test"]]) == order).all()


def test_deep_ensemble_averages_each_networks_max_softmax():
    a = torch.nn.Linear(2, 2, bias=False)
    b = torch.nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        a.weight.copy_(torch.eye(2))
        b.weight.copy_(-torch.eye(2))
    x = torch.tensor([[2.0, 0.0]])
    msp = torch.softmax(torch.tensor([2.0, 0.0]), 0).max()
    # both networks are equally sure (of different classes): the mean of MSPs is that MSP,
    # whereas the max of the averaged softmax would be 0.5
    assert torch.allclose(ensemble_score([a, b], x), msp)


def test_mc_dropout_is_seeded_and_leaves_the_model_as_it_was():
    model = lenet.LeNet().eval()
    x = torch.randn(4, 1, 28, 28)
    state = torch.random.get_rng_state()
    first = mc_dropout_score(model, x, passes=4, seed=3)
    assert torch.equal(first, mc_dropout_score(model, x, passes=4, seed=3))
    assert not torch.equal(first, mc_dropout_score(model, x, passes=4, seed=4))
    assert not model.training and torch.equal(state, torch.random.get_rng_state())
    without = lenet.LeNet(dropout1=0.0, dropout2=0.0)
    without.load_state_dict(model.state_dict())
    msp = torch.softmax(without.eval()(x), 1).max(1).values
    assert torch.allclose(mc_dropout_score(without, x, passes=3), msp, atol=1e-6)


def test_lenet_has_the_authors_keys_and_layers():
    model = lenet.LeNet().eval()
    assert list(model.state_dict()) == ["conv1.weight", "conv1.bias", "conv2.weight",
                                        "conv2.bias", "fc1.weight", "fc1.bias", "fc2.weight",
                                        "fc2.bias"]
    x = torch.randn(2, 1, 28, 28)
    maps = model.layer_maps(x)
    assert [tuple(m.shape[1:]) for m in maps] == [(32, 26, 26), (64, 24, 24), (128,), (10,)]
    assert torch.allclose(maps[-1], model(x))


def test_committed_lenet_is_checked(tmp_path, monkeypatch):
    model = lenet.load_committed(1)
    assert not model.training
    copy = tmp_path / "lenet"
    copy.mkdir()
    sums = (lenet.LENET_DIR / "SHA256SUMS").read_text().splitlines()
    (copy / "SHA256SUMS").write_text("\n".join(line for line in sums if "seed3" not in line))
    seed3 = lenet.committed_path(3).read_bytes()
    data = bytearray(lenet.committed_path(1).read_bytes())
    data[-100] ^= 1
    (copy / "fmnist_lenet_seed1.pt").write_bytes(bytes(data))
    monkeypatch.setattr(lenet, "LENET_DIR", copy)
    with pytest.raises(UserError, match="not the committed"):
        lenet.load_committed(1)
    with pytest.raises(UserError, match="not found"):
        lenet.load_committed(2)
    (copy / "fmnist_lenet_seed3.pt").write_bytes(seed3)
    with pytest.raises(UserError, match="not listed"):
        lenet.load_committed(3)


def test_the_authors_data_parallel_checkpoints_load(tmp_path):
    state = lenet.LeNet().state_dict()
    torch.save({"net": {f"module.{k}": v for k, v in state.items()}}, tmp_path / "theirs.pth")
    loaded = lenet.load_state(tmp_path / "theirs.pth").state_dict()
    assert all(torch.equal(loaded[k], state[k]) for k in state)


def test_benchmark_command_on_real_images(installed, private_outputs, capsys):
    """A CI-sized run of the command: one repetition, MNIST, its first 1,100 images a side,
    written under a name and header that say so, never over the whole protocol's table."""
    whole = private_outputs / "results" / "fssd_fmnist.md"
    whole.parent.mkdir(parents=True)
    whole.write_text("the whole protocol's table\n")
    args = ["--sets", "MNIST", "--reps", "1", "--max-images", "1100",
            "--methods", "Baseline", "DE", "MCD", "OE", "FSSD"]
    fssd_table.run(fssd_table.parse_args(args))
    first = capsys.readouterr().out
    assert "| AUROC (FSSD README) | 77.3 | 83.9 | 76.5 | 99.6 | 99.6 |" in first
    assert ("FSSD's protocol (100 + 100 test images). A shortened run: the first 1100 images "
            "of each set; sets MNIST; MNIST repetitions 1; methods Baseline, DE, MCD, OE, "
            "FSSD.") in first
    name = "fssd_fmnist_n1100_sets-MNIST_reps1_methods-Baseline-DE-MCD-OE-FSSD"
    csv = (private_outputs / "results" / f"{name}.csv").read_text().splitlines()
    assert len(csv) == 6 and csv[0].startswith("rep,set,method,AUROC,AUPRC")
    # beneath AUROC and FPR80: the interval of the mean over the images, around the value
    interval = next(line for line in first.splitlines()
                    if line.startswith("| AUROC, 95% interval over the images |"))
    assert interval.count("[") == 5
    values = next(line for line in first.splitlines() if line.startswith("| AUROC (ours) |"))
    for shown, bounds in zip(values.split(" | ")[1:], interval.split(" | ")[1:]):
        low, high = map(float, bounds.strip("[] |").split(", "))
        assert low <= float(shown.strip(" |")) <= high
    assert "AUROC lower,AUROC upper,FPR at TPR 80% lower" in csv[0]
    auroc = {line.split(",")[2]: float(line.split(",")[3]) for line in csv[1:]}
    assert auroc["FSSD"] > 0.95 and auroc["Baseline"] < auroc["FSSD"]
    fssd_table.run(fssd_table.parse_args(args))   # again: every result from runs/fssd/
    again = capsys.readouterr().out
    assert again.split("wrote")[0] == first.split("wrote")[0] and "replacing" not in again
    fssd_table.run(fssd_table.parse_args(args + ["--out-name", "mine"]))
    fssd_table.run(fssd_table.parse_args(args[:-1] + ["--out-name", "mine"]))
    assert "mine.md, which held other results" in capsys.readouterr().out
    assert len(list((private_outputs / "runs" / "fssd").glob("*.json"))) == 5
    assert len(list((private_outputs / "runs" / "fssd").glob("*.npz"))) == 5   # test scores
    assert whole.read_text() == "the whole protocol's table\n"


def test_benchmark_refuses_too_few_images():
    with pytest.raises(SystemExit):
        fssd_table.parse_args(["--max-images", "1000"])


def test_passes_in_chunks_give_the_batch_s_scores():
    """grid_scores run in chunks (to bound memory and run faster) gives the scores of whole
    batches: FSSD's step is still standardised over the whole batch of 512 (standardising
    each chunk fails here)."""
    torch.manual_seed(0)
    net = lenet.LeNet().eval()
    x = torch.randn(600, 1, 28, 28)
    fssd = FSSD().fit(net, (1, 28, 28), seed=0)
    feats = [m.mean(dim=(2, 3)) if m.dim() == 4 else m for m in net.layer_maps(x[:100])]
    maha = MahalanobisFull().fit([f.detach().double().numpy() for f in feats],
                                 np.arange(100) % 10, 10)
    for detector in (fssd, maha):
        whole = detector.grid_scores(net, x, 0.35, [0.0, 0.01])
        chunked = detector.grid_scores(net, x, 0.35, [0.0, 0.01], chunk=48)
        for m in whole:
            np.testing.assert_allclose(chunked[m], whole[m], rtol=1e-5, atol=1e-6)
