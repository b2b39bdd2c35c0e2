"""LA-OOD's co-training (code/cotrain.py, pipelines/cotraining.py, losses/ocsvm.py): the
vectorised OCSVM term is scikit-learn's score_samples, a step with lambda > 0 raises it, a
step with lambda 0 is plain fine-tuning, a short run is deterministic and resumes exactly,
and every misuse is a one-line error before any long work."""
import csv
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.svm import OneClassSVM

from oodbench.detectors import laood
from oodbench.losses.ocsvm import OCSVMTerm, standardised
from oodbench.pipelines import cotraining


def fitted_svm(features, nu=0.1, gamma=0.3):
    svm = OneClassSVM(kernel="rbf", nu=nu, gamma=gamma).fit(features)
    fit = laood.LayerFit(np.zeros(features.shape[1]), np.ones(features.shape[1]), nu, gamma,
                         0.0, 0, svm.support_vectors_, svm.dual_coef_,
                         float(svm.intercept_[0]))
    return svm, fit


def test_the_ocsvm_term_is_sklearns_score_samples():
    rng = np.random.RandomState(0)
    features = rng.normal(0, 1, (300, 6))
    svm, fit = fitted_svm(features)
    probe = rng.normal(0, 1.5, (40, 6))
    expected = svm.score_samples(probe)
    np.testing.assert_allclose(expected, svm.decision_function(probe) + svm.offset_)
    term = OCSVMTerm(fit)
    np.testing.assert_allclose(term(torch.from_numpy(probe)).numpy(), expected, rtol=1e-12)
    total = term(torch.from_numpy(probe)).sum().item()
    assert total == pytest.approx(expected.sum(), rel=1e-12)
    # support vectors taken a few at a time: the same values
    small = OCSVMTerm(fit, chunk=3)
    np.testing.assert_allclose(small(torch.from_numpy(probe)).numpy(), expected, rtol=1e-12)


def test_standardised_is_the_scalers_transform():
    x = torch.tensor([[1.0, 2.0], [3.0, 6.0]])
    z = standardised(x, torch.tensor([2.0, 4.0], dtype=torch.float64),
                     torch.tensor([1.0, 2.0], dtype=torch.float64))
    assert z.dtype == torch.float64 and z.tolist() == [[-1.0, -1.0], [1.0, 1.0]]


def test_running_moments_are_the_whole_sets():
    values = torch.randn(1000, 4, dtype=torch.float64) * 3 + 1
    moments = cotraining.RunningMoments()
    for part in values.split(77):
        moments.add(part)
    mean, scale = moments.scaler()
    torch.testing.assert_close(mean, values.mean(0))
    torch.testing.assert_close(scale, values.std(0, unbiased=False))


# --- on the real ResNet-20, with a user's small training and test sets (CI-sized) ---------

from oodbench.commands import cli, cotrain  # noqa: E402
from oodbench.core.paths import UserError  # noqa: E402
from oodbench.datasets.image_sets import cifar  # noqa: E402
from oodbench.pipelines.runs import ScoringOptions  # noqa: E402
from oodbench.scoring.odin_scoring import normaliser  # noqa: E402

FEW = ["--epochs", "2", "--max-steps", "2", "--batch-size", "32", "--subsample", "100",
       "--gpu", "-1"]


@pytest.fixture(scope="module")
def small_sets(tmp_path_factory):
    """The first 300 CIFAR-10 training images and the first 200 test images, as npz files:
    ResNet-20 co-trained on them in seconds."""
    folder = tmp_path_factory.mktemp("sets")
    for name, train, count in (("train", True, 300), ("test", False, 200)):
        data = cifar("CIFAR-10", train=train)
        np.savez(folder / f"{name}.npz", images=data.images[:count].permute(0, 2, 3, 1).numpy(),
                 labels=np.asarray(data.labels[:count]))
    return ["--nn", "resnet20", "--train-dataset", f"npz:{folder / 'train.npz'}",
            "--in-dataset", f"npz:{folder / 'test.npz'}"]


def run_cotrain(argv):
    """cotrain.py's work without main's error report: a UserError is raised, not printed."""
    return cotrain.run(cotrain.build_parser().parse_args(argv))


def state(path):
    return torch.load(path, weights_only=True)


@pytest.fixture(scope="module")
def fitted(installed, small_sets, tmp_path_factory):
    """(model name, LA-OOD fits, training set) of ResNet-20 on the small training set."""
    import os
    os.environ["ODIN_RUNS_DIR"] = str(tmp_path_factory.mktemp("runs"))
    try:
        args = cotrain.build_parser().parse_args(small_sets)
        name = cli.resolve_model(args)
        fits, unfit, train = cotraining.laood_fits(name, ScoringOptions(device="cpu"), 100,
                                                   "narrow")
    finally:
        del os.environ["ODIN_RUNS_DIR"]
    assert not unfit and len(fits) == 20            # 19 convolutions and the logits
    return name, fits, train


def one_step(name, fits, train, lam, lr=0.01):
    """(the OCSVM term of a batch before, after one SGD step of ``lam``; the weights after)."""
    torch.manual_seed(0)
    model = cotraining.trainable(name, "cpu")
    spec = cotraining.get_spec(name)
    normalise, _ = normaliser(spec.mean, spec.std, "cpu")
    terms = {n: OCSVMTerm(f) for n, f in fits.items()}
    taps = cotraining.Taps(model, list(terms))
    stats = cotraining.channel_stats(model, taps, train, list(terms), normalise,
                                     torch.Generator().manual_seed(0), 100, "stats")
    images, labels = cotraining.batch_of(train, torch.arange(64))
    inputs = normalise(images)
    drawn = list(terms)
    optimiser = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=1e-4)
    model.train()
    _, _, before = cotraining.step_loss(model, taps, terms, stats, inputs, labels, drawn, lam)
    loss, _, _ = cotraining.step_loss(model, taps, terms, stats, inputs, labels, drawn, lam)
    optimiser.zero_grad()
    loss.backward()
    optimiser.step()
    with torch.no_grad():
        _, _, after = cotraining.step_loss(model, taps, terms, stats, inputs, labels, drawn, lam)
    taps.close()
    return before.item(), after.item(), model.state_dict()


def test_a_step_with_lambda_raises_the_batchs_decision_values(fitted):
    name, fits, train = fitted
    # the authors' lr; a small step (lambda x lr of 1e-5: the kernel's curvature makes much
    # larger steps overshoot on one batch)
    before, after, _ = one_step(name, fits, train, lam=0.01, lr=0.001)
    _, plain, _ = one_step(name, fits, train, lam=0.0, lr=0.001)
    assert after - before > 10 * abs(plain - before) > 0


def test_lambda_zero_is_exactly_plain_fine_tuning(fitted):
    name, fits, train = fitted
    _, _, cotrained = one_step(name, fits, train, lam=0.0)
    torch.manual_seed(0)
    model = cotraining.trainable(name, "cpu")
    spec = cotraining.get_spec(name)
    normalise, _ = normaliser(spec.mean, spec.std, "cpu")
    images, labels = cotraining.batch_of(train, torch.arange(64))
    optimiser = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    model.train()
    for _ in range(2):          # one_step's forward passes: the BN running statistics too
        loss = F.cross_entropy(model(normalise(images)), labels)
    optimiser.zero_grad()
    loss.backward()
    optimiser.step()
    with torch.no_grad():       # and its pass after the step
        model(normalise(images))
    plain = model.state_dict()
    assert all(torch.equal(plain[k], cotrained[k]) for k in plain)


def test_a_short_run_is_deterministic_and_resumes_exactly(fitted, small_sets, tmp_path,
                                                          monkeypatch):
    run_cotrain([*small_sets, *FEW, "--out", str(tmp_path / "a")])
    run_cotrain([*small_sets, *FEW, "--out", str(tmp_path / "b")])
    run_cotrain([*small_sets, *FEW, "--out", str(tmp_path / "c"), "--seed", "1"])
    a, b, c = (state(tmp_path / x / "epoch2.pt") for x in "abc")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)
    assert ((tmp_path / "a" / "epoch2.pt").read_bytes()
            == (tmp_path / "b" / "epoch2.pt").read_bytes())
    record = json.loads((tmp_path / "a" / "epoch2.json").read_text())
    assert record["sha256"] == (tmp_path / "a" / "SHA256SUMS").read_text().split()[-2]
    assert record["model_flags"][:4] == ["--arch", "resnet20", "--weights",
                                         str((tmp_path / "a" / "epoch2.pt").resolve())]
    log = (tmp_path / "a" / "log.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in log] == [0, 1, 2]
    assert not (tmp_path / "a" / "partial.pt").exists()

    real_epoch = cotraining.train_epoch

    def stop_in_second_epoch(*args):
        if args[6] == 1:
            raise KeyboardInterrupt
        return real_epoch(*args)
    monkeypatch.setattr(cotraining, "train_epoch", stop_in_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        run_cotrain([*small_sets, *FEW, "--out", str(tmp_path / "r")])
    assert (tmp_path / "r" / "partial.pt").exists() and (tmp_path / "r" / "epoch1.pt").exists()
    assert not (tmp_path / "r" / "epoch2.pt").exists()
    monkeypatch.setattr(cotraining, "train_epoch", real_epoch)
    with pytest.raises(UserError, match="differs in lam"):       # another recipe: refused
        run_cotrain([*small_sets, *FEW, "--out", str(tmp_path / "r"), "--lambda", "0.5"])
    run_cotrain([*small_sets, *FEW, "--out", str(tmp_path / "r")])
    resumed = state(tmp_path / "r" / "epoch2.pt")
    assert all(torch.equal(a[k], resumed[k]) for k in a)
    # a finished run is kept
    with pytest.raises(UserError, match="holds a co-training run .finished.: pass --force"):
        run_cotrain([*small_sets, *FEW, "--out", str(tmp_path / "r")])


def test_the_cotrained_network_is_a_model_like_any_other(fitted, small_sets, tmp_path):
    """Its recorded flags load it (a model from files) and its LA-OOD refits on its features."""
    run_cotrain([*small_sets, *FEW, "--out", str(tmp_path / "a"), "--lambda", "0.01"])
    flags = json.loads((tmp_path / "a" / "epoch2.json").read_text())["model_flags"]
    args = cotrain.build_parser().parse_args(flags)
    name = cli.resolve_model(args)
    assert name.startswith("resnet20-") and name != fitted[0]
    fits, _, _ = cotraining.laood_fits(name, ScoringOptions(device="cpu"), 100, "narrow")
    assert set(fits) == set(fitted[1])
    assert any(not np.array_equal(fits[n].support_vectors, fitted[1][n].support_vectors)
               for n in fits)


@pytest.mark.parametrize("flags, message", [
    (["--lambda", "-0.1"], "must be a finite number >= 0"),
    (["--lambda", "nan"], "must be a finite number >= 0"),
    (["--lambda", "inf"], "must be a finite number >= 0"),
    (["--epochs", "0"], "must be at least 1"),
    (["--layers-per-step", "0"], "must be at least 1"),
])
def test_bad_flags_are_refused_while_parsing(flags, message, capsys):
    with pytest.raises(SystemExit):
        cotrain.build_parser().parse_args(["--nn", "resnet20", *flags])
    assert message in capsys.readouterr().err


def test_a_model_without_a_training_set_is_refused_before_any_work(installed, small_sets,
                                                                   tmp_path):
    test_only = [small_sets[0], small_sets[1], *small_sets[4:]]     # --in-dataset only
    with pytest.raises(UserError, match="--train-dataset"):
        run_cotrain([*test_only, *FEW, "--out", str(tmp_path / "a")])
    assert not (tmp_path / "a").exists()


def test_a_loss_that_is_not_finite_stops_at_once_and_writes_no_checkpoint(fitted, small_sets,
                                                                          tmp_path):
    with pytest.raises(UserError, match=r"epoch 1, step 1: the loss is not finite"):
        run_cotrain([*small_sets, *FEW, "--out", str(tmp_path / "a"), "--lambda", "1e308"])
    assert not list((tmp_path / "a").glob("epoch*.pt"))


def test_the_augmentation_is_a_flip_then_a_crop_of_the_padded_image():
    images = torch.randint(0, 256, (64, 3, 8, 8), dtype=torch.uint8)
    out = cotraining.augment(images, torch.Generator().manual_seed(0), pad=2)
    assert out.shape == images.shape and out.dtype == torch.uint8
    flips = offsets = set()
    for image, seen in zip(images, out):
        found = [(flip, dy, dx) for flip in (False, True) for dy in range(5) for dx in range(5)
                 if torch.equal(F.pad(image.flip(-1) if flip else image, (2, 2, 2, 2))
                                [:, dy:dy + 8, dx:dx + 8], seen)]
        assert found, "not a crop of the (flipped) padded image"
        flips = flips | {found[0][0]}
        offsets = offsets | {found[0][1:]}
    assert flips == {False, True} and len(offsets) > 10      # both ways, many offsets
    again = cotraining.augment(images, torch.Generator().manual_seed(0), pad=2)
    assert torch.equal(out, again)                            # seeded


def test_a_run_stopped_in_its_first_epoch_starts_again(
        fitted, small_sets, tmp_path, monkeypatch, capsys):
    real_epoch = cotraining.train_epoch

    def stop(*args):
        raise KeyboardInterrupt
    monkeypatch.setattr(cotraining, "train_epoch", stop)
    with pytest.raises(KeyboardInterrupt):
        run_cotrain([*small_sets, *FEW, "--out", str(tmp_path / "a")])
    assert (tmp_path / "a" / "log.jsonl").exists() and not (tmp_path / "a" / "partial.pt").exists()
    monkeypatch.setattr(cotraining, "train_epoch", real_epoch)
    run_cotrain([*small_sets, *FEW, "--out", str(tmp_path / "a")])
    assert "a run stopped in its first epoch; starting again" in capsys.readouterr().out
    log = (tmp_path / "a" / "log.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in log] == [0, 1, 2]


def test_the_study_table_sets_the_network_before_and_after_side_by_side(
        fitted, small_sets, tmp_path, private_outputs):
    from oodbench.commands import cotrain_table
    for lam in ("0", "0.01"):
        run_cotrain([*small_sets, *FEW, "--out", str(tmp_path / lam), "--lambda", lam])
    cotrain_table.report(cotrain_table.build_parser().parse_args(
        [*small_sets, "--runs", str(tmp_path / "0.01"), str(tmp_path / "0"), "--sets", "iSUN",
         "--methods", "energy", "--skip", "20", "--tune-images", "10", "--max-images", "40",
         "--gpu", "-1"]))
    (md,) = (private_outputs / "results").glob("cotrain_*.md")
    assert md.name.endswith("_tune10_sets-iSUN_skip20_n40.md")
    text = md.read_text()
    assert "| network | lambda |" in text and "| lambda 0.01 | 0.01 | 2 |" in text
    row = next(line for line in text.splitlines() if line.startswith("| lambda 0.01 |"))
    assert len(row.split("|")[7].split(",")) == 2            # the OCSVM term of each epoch
    header = next(line for line in text.splitlines() if line.startswith("| detector | OOD set"))
    assert header == "| detector | OOD set | before | lambda 0 | lambda 0.01 |"   # by lambda
    rows = list(csv.DictReader(md.with_suffix(".csv").open()))
    assert {r["detector"] for r in rows} == {"MSP (baseline)", "ODIN", "Energy", "LA-OOD"}
    assert {r["network"] for r in rows} == {"before", "lambda 0", "lambda 0.01"}
    assert all(0 <= float(r["AUROC"]) <= 100 for r in rows)
    assert all(float(r["AUROC lower"]) <= float(r["AUROC"]) <= float(r["AUROC upper"])
               for r in rows)
    assert "±" in text and "Holm-corrected over the pairs of networks" in text
    pairs = list(csv.DictReader(md.with_name(md.stem + "_pairs.csv").open()))
    # per detector: (1 set + the mean) x 2 metrics x 3 pairs of networks
    assert len(pairs) == 4 * 2 * 2 * 3
    assert (private_outputs / "figures" / md.with_suffix(".png").name).stat().st_size > 10000
    # misuse: a run of another network, a folder that is no run, two runs of one lambda
    with pytest.raises(UserError, match="was co-trained from"):
        cotrain_table.report(cotrain_table.build_parser().parse_args(
            ["--nn", "resnet32", "--runs", str(tmp_path / "0")]))
    with pytest.raises(UserError, match="not a co-training folder"):
        cotrain_table.report(cotrain_table.build_parser().parse_args(
            [*small_sets, "--runs", str(tmp_path)]))
    with pytest.raises(UserError, match="two runs of the same lambda"):
        cotrain_table.report(cotrain_table.build_parser().parse_args(
            [*small_sets, "--runs", str(tmp_path / "0"), str(tmp_path / "0")]))


@pytest.mark.parametrize("command", ["cotrain", "cotrain_table"])
def test_help_explains_each_flag(command, capsys):
    from oodbench.commands import cotrain_table
    parser = {"cotrain": cotrain, "cotrain_table": cotrain_table}[command].build_parser()
    with pytest.raises(SystemExit) as stop:
        parser.parse_args(["--help"])
    assert stop.value.code == 0
    text = capsys.readouterr().out
    assert "--lambda" in text if command == "cotrain" else "--runs" in text


def test_a_moved_cotraining_folder_names_its_own_checkpoint(tmp_path):
    """The record holds the absolute path it was written to; a clone elsewhere (a committed
    folder) must load the checkpoint beside the record, not that path."""
    from oodbench.commands import cotrain_table
    record = {"file": "epoch5.pt", "model_flags": ["--arch", "resnet56", "--weights",
                                                   "/elsewhere/run/epoch5.pt", "--image-size",
                                                   "32"]}
    assert cotrain_table.weights_here(record, tmp_path) == [
        "--arch", "resnet56", "--weights", str(tmp_path.resolve() / "epoch5.pt"),
        "--image-size", "32"]
