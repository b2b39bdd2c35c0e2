"""code/train.py: a few seeded steps give the same weights twice, a stopped run resumes to the
same weights, bad checkpoints and outlier sets are clear errors, nothing is overwritten;
and Outlier Exposure's loss by hand."""
import math

import pytest
import torch

from oodbench.commands import train
from oodbench.core.paths import UserError
from oodbench.datasets import greysets

FEW = ["--epochs", "2", "--max-steps", "3"]


def run_train(argv):
    """train.py's work without main's error report: a UserError is raised, not printed."""
    return train.run(train.parse_args(argv))


def weights(path):
    return torch.load(path, weights_only=True)


def same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_few_steps_are_deterministic_and_the_seed_matters(installed, tmp_path):
    run_train(["--out", str(tmp_path / "a.pt"), *FEW])
    run_train(["--out", str(tmp_path / "b.pt"), *FEW])
    run_train(["--out", str(tmp_path / "c.pt"), "--seed", "2", *FEW])
    assert same(weights(tmp_path / "a.pt"), weights(tmp_path / "b.pt"))
    assert not same(weights(tmp_path / "a.pt"), weights(tmp_path / "c.pt"))
    log = (tmp_path / "a.log").read_text().splitlines()
    assert len(log) == 3 and '"epoch": 2' in log[2]   # the recipe, then one line per epoch


def test_a_stopped_run_resumes_exactly(installed, tmp_path, monkeypatch):
    run_train(["--out", str(tmp_path / "straight.pt"), *FEW])
    real_epoch = train.train_epoch

    def stop_in_second_epoch(*args):
        if args[3] == 1:
            raise KeyboardInterrupt
        return real_epoch(*args)
    monkeypatch.setattr(train, "train_epoch", stop_in_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        run_train(["--out", str(tmp_path / "resumed.pt"), *FEW])
    assert (tmp_path / "resumed.pt.partial").exists() and not (tmp_path / "resumed.pt").exists()
    monkeypatch.setattr(train, "train_epoch", real_epoch)
    run_train(["--out", str(tmp_path / "resumed.pt"), *FEW])
    assert same(weights(tmp_path / "straight.pt"), weights(tmp_path / "resumed.pt"))
    assert not (tmp_path / "resumed.pt.partial").exists()


def test_corrupt_or_foreign_checkpoints_are_refused(installed, tmp_path):
    out = tmp_path / "m.pt"
    partial = tmp_path / "m.pt.partial"
    partial.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="cannot resume"):
        run_train(["--out", str(out), *FEW])
    assert partial.read_bytes() == b"not a checkpoint"
    partial.unlink()
    torch.save({"recipe": {}}, partial)
    with pytest.raises(UserError, match="cannot resume"):
        run_train(["--out", str(out), *FEW])
    torch.save(dict(recipe=dict(train.recipe_of(train.parse_args(["--out", "x", "--seed", "5"]))),
                    epoch=0, model={}, optimiser={}, scheduler={}), partial)
    with pytest.raises(UserError, match="another recipe .*seed"):
        run_train(["--out", str(out), *FEW])
    (tmp_path / "bad.pt").write_bytes(b"junk")
    with pytest.raises(UserError, match="not a readable"):
        run_train(["--oe", "--init", str(tmp_path / "bad.pt"), "--out", str(out), *FEW])
    torch.save({"weight": torch.zeros(2)}, tmp_path / "foreign.pt")
    with pytest.raises(UserError, match="not a LeNet"):
        run_train(["--oe", "--init", str(tmp_path / "foreign.pt"), "--out", str(out), *FEW])


def test_an_existing_output_is_kept(installed, tmp_path):
    out = tmp_path / "m.pt"
    out.write_bytes(b"keep me")
    with pytest.raises(UserError, match="--force"):
        run_train(["--out", str(out), *FEW])
    assert out.read_bytes() == b"keep me"


def test_outlier_sets_never_share_a_test_image(installed):
    with pytest.raises(UserError, match="test set"):
        greysets.outlier_images("MNIST")
    outliers = greysets.outlier_images("TIN_val_grey")
    assert len(outliers) == 9999   # Tiny-ImageNet val_6382 is test_9748: left out


def test_outlier_exposure_loss_by_hand():
    in_logits, labels = torch.tensor([[2.0, 0.0]]), torch.tensor([0])
    ce = -torch.log_softmax(in_logits, 1)[0, 0]
    uniform_out = torch.zeros(3, 2)   # the softmax is already uniform: CE to uniform = log 2
    assert torch.isclose(train.oe_loss(in_logits, labels, uniform_out, 0.5), ce + 0.5 * math.log(2))
    sure_out = torch.tensor([[5.0, -5.0]])   # -(1/2)(log p1 + log p2)
    to_uniform = -torch.log_softmax(sure_out, 1).mean()
    assert torch.isclose(train.oe_loss(in_logits, labels, sure_out, 0.5), ce + 0.5 * to_uniform)


def test_outlier_exposure_fine_tunes_a_trained_lenet(installed, tmp_path):
    run_train(["--out", str(tmp_path / "base.pt"), "--epochs", "1", "--max-steps", "2"])
    run_train(["--oe", "--init", str(tmp_path / "base.pt"), "--out", str(tmp_path / "oe.pt"),
                "--epochs", "1", "--max-steps", "2"])
    assert not same(weights(tmp_path / "base.pt"), weights(tmp_path / "oe.pt"))
    recipe = (tmp_path / "oe.log").read_text().splitlines()[0]
    assert '"mode": "oe"' in recipe and '"init_sha256"' in recipe


def test_oe_needs_init_and_init_needs_oe():
    with pytest.raises(SystemExit):
        train.parse_args(["--out", "x", "--oe"])
    with pytest.raises(SystemExit):
        train.parse_args(["--out", "x", "--init", "y"])
    with pytest.raises(SystemExit):
        train.parse_args(["--out", "x", "--max-steps", "0"])


def test_a_checkpoint_is_the_same_bytes_whatever_its_temporary_name(tmp_path):
    """torch names the archive inside a checkpoint after the file it writes: saved through a
    temporary file, the committed LeNet's tensors give its committed bytes again (its sha256
    in models/lenet/SHA256SUMS), twice."""
    import torch
    from oodbench.core import files
    from oodbench.core.digests import file_digest
    from oodbench.core.paths import ROOT
    committed = ROOT / "models" / "lenet" / "fmnist_lenet_seed1.pt"
    state = torch.load(committed, weights_only=True)
    for _ in range(2):
        files.save_torch(state, tmp_path / committed.name)
        assert file_digest(tmp_path / committed.name) == file_digest(committed)
    assert [p.name for p in tmp_path.iterdir()] == [committed.name]
