"""scripts/paired_runs.py: two runs of one detector on the same images, compared pairwise."""
import sys

import numpy as np

from oodbench.core import scorefiles
from oodbench.core.paths import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import paired_runs  # noqa: E402


def bare_run(folder, ins, outs):
    folder.mkdir()
    scorefiles.write_scores(folder, 1000, 0.0014, {("Our", "In"): ins, ("Our", "Out"): outs})
    return str(folder)


def test_the_same_scores_differ_by_nothing_and_a_better_run_is_told_apart(tmp_path, capsys):
    rng = np.random.default_rng(0)
    ins, outs = rng.normal(1, 1, 400), rng.normal(0, 1, 400)
    first = bare_run(tmp_path / "a", ins, outs)
    assert paired_runs.main([first, bare_run(tmp_path / "b", ins, outs)]) == 0
    same = capsys.readouterr().out
    assert same.count("+0.00  95% [+0.00, +0.00]  paired bootstrap p = 1.000") == 2
    better = bare_run(tmp_path / "c", ins + 1, outs)          # the second separates better
    assert paired_runs.main([first, better]) == 0
    auroc = capsys.readouterr().out.splitlines()[1]
    assert auroc.split()[0] == "AUROC" and float(auroc.split()[1]) < -5
    assert "p = 0.000" in auroc


def test_runs_of_other_images_are_refused(tmp_path, capsys):
    first = bare_run(tmp_path / "a", np.arange(10.0), np.arange(10.0))
    other = bare_run(tmp_path / "b", np.arange(12.0), np.arange(10.0))
    assert paired_runs.main([first, other]) == 2
    assert "needs the same images" in capsys.readouterr().err
