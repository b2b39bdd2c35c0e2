"""The authors' densenet10 on real CIFAR-10 and iSUN images, end to end (needs ../shared)."""
import json

import numpy as np
import torch
from torch.utils.data import Subset

from oodbench.commands import main
from oodbench.core.scorefiles import read_score_file
from oodbench.datasets.image_sets import cifar, ood_dataset
from oodbench.networks.registry import load_model
from oodbench.pipelines import runs
from oodbench.scoring import odin_scoring
from oodbench.scoring.metrics import METRICS

N = 200


def test_densenet10_isun_end_to_end(installed, tmp_path, capsys):
    rc = main.main(["--nn", "densenet10", "--out_dataset", "iSUN", "--magnitude", "0.0014",
                    "--temperature", "1000", "--gpu", "-1", "--max-images", str(N),
                    "--batch-size", "50", "--out-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == 0
    lines = out.splitlines()
    start = lines.index("Neural network architecture:          DenseNet-BC-100")
    assert lines[start + 1] == "In-distribution dataset:                     CIFAR-10"
    assert lines[start + 2] == "Out-of-distribution dataset:                     iSUN"
    assert lines[start + 4] == "                          Baseline         Our Method"
    rows = {}
    for line, name in zip(lines[start + 5:start + 10], METRICS):
        assert line.startswith(name + ":")
        rows[name] = [float(v) for v in line[len(name) + 1:].replace("%", " ").split()]
    # ODIN beats the baseline on every metric; the paper's gap is large on iSUN.
    assert rows["FPR at TPR 95%"][1] < rows["FPR at TPR 95%"][0] - 20
    assert rows["AUROC"][1] > rows["AUROC"][0]

    info = json.loads((tmp_path / "run.json").read_text())
    assert info["images_per_side"] == N and info["first_index"] == 1000
    assert 0.92 <= info["accuracy"] <= 0.98          # 95.19% on all 10,000
    assert f"accuracy on the {N} CIFAR-10 images scored: {100 * info['accuracy']:.2f}%" in out
    for name in ("Base_In", "Base_Out", "Our_In", "Our_Out"):
        t, eps, scores = read_score_file(tmp_path / "softmax_scores" / f"confidence_{name}.txt")
        assert (t, eps, len(scores)) == (1000, 0.0014, N)
        assert np.all((scores >= 0.1 - 1e-6) & (scores <= 1))   # max softmax of 10 classes
    _, _, odin_in = read_score_file(tmp_path / "softmax_scores" / "confidence_Our_In.txt")
    assert odin_in.max() < 0.12                      # T = 1000 flattens the softmax


def test_a_run_scores_the_images_after_the_held_out_split(installed, tmp_path):
    """Image k of each score file is image 1,000 + k of its set, scored on its own."""
    settings = runs.RunSettings("densenet10", "iSUN", 10, 0.002, max_images=6)
    plan = runs.plan(settings, tmp_path)
    assert plan.indices == range(1000, 1006)
    model, _ = runs.load_scorer("densenet10", runs.ScoringOptions("cpu", 4, "off"), 12)
    runs.score(model, False, plan, runs.ScoringOptions("cpu", 4, "off"))
    for side, data in (("In", cifar("CIFAR-10")), ("Out", ood_dataset("iSUN"))):
        _, _, written = read_score_file(tmp_path / "softmax_scores" / f"confidence_Our_{side}.txt")
        for k in (0, 5):
            alone = odin_scoring.score_dataset(model, Subset(data, [1000 + k]), plan.spec.mean,
                                               plan.spec.std, 10, 0.002, "cpu").odin[0]
            assert abs(written[k] - alone) <= 1e-5, (side, k)
        neighbour = odin_scoring.score_dataset(model, Subset(data, [1001]), plan.spec.mean,
                                               plan.spec.std, 10, 0.002, "cpu").odin[0]
        assert abs(written[0] - neighbour) > 1e-3, side  # the margin: images differ


def test_densenet10_batched_equals_single_image(installed):
    model, spec = load_model("densenet10")
    images = Subset(ood_dataset("iSUN"), range(1000, 1006))
    cifar_images = Subset(cifar("CIFAR-10"), range(1000, 1006))
    for data in (images, cifar_images):
        args = (model, data, spec.mean, spec.std, 1000, 0.0014, "cpu")
        batched = odin_scoring.score_dataset(*args, batch_size=6)
        single = odin_scoring.score_dataset(*args, batch_size=1)
        assert np.abs(batched.baseline - single.baseline).max() <= 1e-5
        assert np.abs(batched.odin - single.odin).max() <= 1e-5
        assert np.array_equal(batched.predictions, single.predictions)


def test_release_pickle_loads_into_our_classes(installed):
    """The release's densenet10.pth names its classes densenet.DenseNet3 and so on: they
    unpickle as this package's (oodbench.networks.densenet), and the name densenet is left
    unbound afterwards."""
    import sys

    from oodbench.networks.densenet import DenseNet3
    model, spec = load_model("densenet10")
    assert type(model) is DenseNet3 and spec.num_classes == 10
    assert "densenet" not in sys.modules
    assert sum(p.numel() for p in model.parameters()) == 769162
    first = torch.from_numpy(np.asarray(cifar("CIFAR-10").images[:8])).float() / 255
    normalise, _ = odin_scoring.normaliser(spec.mean, spec.std, "cpu")
    with torch.no_grad():
        predicted = model(normalise(first)).argmax(1).numpy()
    assert (predicted == cifar("CIFAR-10").labels[:8]).mean() >= 0.75
