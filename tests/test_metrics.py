"""Metrics against hand-computed cases, and the paper sweep against the exact values."""
import numpy as np
import pytest

from oodbench.commands import calmetric
from oodbench.core import scorefiles
from oodbench.core.paths import UserError
from oodbench.core.scorefiles import read_score_file
from oodbench.reports.metric_block import metric_block, run_metrics
from oodbench.scoring.metrics import exact_metrics, paper_metrics, sweep_range


def close(result, expected):
    for name, value in expected.items():
        assert result[name] == pytest.approx(value, abs=1e-9), name


def test_perfect_separation():
    close(exact_metrics([0.9, 0.8, 0.7, 0.6], [0.5, 0.4]),
          {"FPR at TPR 95%": 0, "Detection error": 0, "AUROC": 1, "AUPR In": 1, "AUPR Out": 1})


def test_inverted_separation():
    # AUPR In: in-scores ranked last: precision 1/3 at recall 1/2, 2/4 at recall 1.
    close(exact_metrics([0.1, 0.2], [0.8, 0.9]),
          {"FPR at TPR 95%": 1, "Detection error": 0.5, "AUROC": 0,
           "AUPR In": 0.5 / 3 + 0.25, "AUPR Out": 0.5 / 3 + 0.25})


def test_identical_scores():
    close(exact_metrics([0.5] * 3, [0.5] * 2),
          {"FPR at TPR 95%": 1, "Detection error": 0.5, "AUROC": 0.5,
           "AUPR In": 3 / 5, "AUPR Out": 2 / 5})


def test_ties_and_unequal_sizes():
    # in = {0.9, 0.5, 0.5}, out = {0.5, 0.1}; worked by hand in the docstring terms:
    # AUROC = (1 + 1 + .5 + 1 + .5 + 1) / 6; at threshold 0.5 TPR = 1, FPR = 1/2;
    # detection error min(1/2, 1/3, 1/4, 1/2); AP-in = 1/3 * 1 + 2/3 * 3/4;
    # AP-out (negated): precision 1 at recall 1/2, 2/4 at recall 1.
    close(exact_metrics([0.9, 0.5, 0.5], [0.5, 0.1]),
          {"FPR at TPR 95%": 0.5, "Detection error": 0.25, "AUROC": 5 / 6,
           "AUPR In": 1 / 3 + 0.5, "AUPR Out": 0.75})


def test_fpr95_uses_highest_threshold_reaching_95_percent():
    ins = np.arange(1, 101) / 100.0          # TPR >= .95 first at threshold 0.06
    outs = np.array([0.055, 0.065, 0.5])
    assert exact_metrics(ins, outs)["FPR at TPR 95%"] == pytest.approx(2 / 3)


def test_paper_sweep_perfect_and_no_division_by_zero():
    result = paper_metrics([0.9, 0.8, 0.7, 0.6], [0.5, 0.4], 0.1, 1.0)
    close(result, {"FPR at TPR 95%": 0, "Detection error": 0, "AUROC": 1})
    # No threshold has TPR in [0.9495, 0.9505] for two in-scores: nearest is used.
    same = paper_metrics([0.5, 0.5], [0.5, 0.5], 0.1, 1.0)
    assert np.isfinite(list(same.values())).all()
    assert same["FPR at TPR 95%"] == pytest.approx(1.0)


def test_paper_sweep_close_to_exact_on_realistic_scores():
    rng = np.random.default_rng(0)
    ins = 1 / (1 + np.exp(-rng.normal(3, 1, 4000)))
    outs = 1 / (1 + np.exp(-rng.normal(1, 1.2, 3000)))   # unequal sizes
    exact = exact_metrics(ins, outs)
    paper = paper_metrics(ins, outs, *sweep_range(np.r_[ins, outs]))
    for name in exact:
        # FPR95 averages over the TPR window [0.9495, 0.9505]: a little looser
        assert paper[name] == pytest.approx(exact[name], abs=5e-3 if "FPR" in name else 2e-3), name


def test_sweep_range_release_cases_and_any_temperature():
    assert sweep_range(np.array([0.1001, 0.11]), 10, 1000) == (0.1, 0.12)
    start, end = sweep_range(np.array([0.2, 0.7]), 10, 7)     # T the release never used
    assert start == 0.2 and end > 0.7
    assert sweep_range(np.array([0.1, 0.13]), 10, 1000)[1] > 0.13  # grows to cover scores


def test_score_files_roundtrip_and_block(tmp_path):
    for method, ins, outs in (("Base", [0.9, 0.8], [0.3, 0.2]), ("Our", [0.11, 0.12], [0.1, 0.1])):
        for side, values in (("In", ins), ("Out", outs)):
            t = 1000 if method == "Our" else 1000
            (tmp_path / f"confidence_{method}_{side}.txt").write_text(
                "".join(f"{t}, 0.0014, {v}\n" for v in values))
    result = run_metrics(tmp_path)
    assert result["Baseline"]["AUROC"] == 1.0 and result["ODIN"]["AUROC"] == 1.0
    block = metric_block(result, "DenseNet-BC-100", "CIFAR-10", "iSUN")
    assert block.splitlines()[0] == "Neural network architecture:          DenseNet-BC-100"
    assert block.splitlines()[5] == "FPR at TPR 95%:               0.0%               0.0%"


def test_bad_score_files(tmp_path):
    bad = tmp_path / "x.txt"
    bad.write_text("1000, 0.0014\n")
    with pytest.raises(UserError, match="expected lines"):
        read_score_file(bad)
    bad.write_text("")
    with pytest.raises(UserError):
        read_score_file(bad)
    with pytest.raises(UserError, match="unreadable"):
        read_score_file(tmp_path / "missing.txt")


# A case worked by hand: in = {.2, .4, .6, .8}, out = {.1, .3, .5}.
#  FPR95: TPR >= 95% needs every in-score, threshold .2: out .3, .5 accepted -> 2/3.
#  Detection error: best at a threshold in (.5, .6]: TPR 1/2, FPR 0 -> 1/4.
#  AUROC: 9 of the 12 (in, out) pairs ordered right -> 3/4.
#  AUPR In, exact (average precision): 1/4 (1 + 1 + 3/4 + 4/6) = 41/48.
#  AUPR In, paper (rectangles at the precision after each recall step):
#    1/4 (3/5 + 2/3 + 1) + 1/4 * 1 = 49/60.
#  AUPR Out, exact (OOD positive, ascending score): 1/3 (1 + 2/3 + 3/5) = 34/45.
#  AUPR Out, paper: 1/3 * 1/2 + 1/3 * 1/2 + 1/3 * 1 = 2/3.
HAND_IN, HAND_OUT = [0.2, 0.4, 0.6, 0.8], [0.1, 0.3, 0.5]
HAND = {"exact": {"FPR at TPR 95%": 2 / 3, "Detection error": 1 / 4, "AUROC": 3 / 4,
                  "AUPR In": 41 / 48, "AUPR Out": 34 / 45},
        "paper": {"FPR at TPR 95%": 2 / 3, "Detection error": 1 / 4, "AUROC": 3 / 4,
                  "AUPR In": 49 / 60, "AUPR Out": 2 / 3}}


def hand_run(folder):
    """A bare folder of score files: ODIN = the hand case, baseline = its scores reflected
    (1 - score: the same images, the order of every pair reversed)."""
    scorefiles.write_scores(folder, 1000, 0.0014, {
        ("Our", "In"): HAND_IN, ("Our", "Out"): HAND_OUT,
        ("Base", "In"): [1 - s for s in HAND_IN], ("Base", "Out"): [1 - s for s in HAND_OUT]})
    return folder


@pytest.mark.parametrize("mode", ["exact", "paper"])
def test_run_metrics_on_the_hand_case(tmp_path, mode):
    result = run_metrics(hand_run(tmp_path), mode)
    for name, value in HAND[mode].items():
        assert result["ODIN"][name] == pytest.approx(value, abs=1e-4), name
    assert result["Baseline"]["AUROC"] == pytest.approx(1 / 4, abs=1e-4)   # 3 of 12 pairs


@pytest.mark.parametrize("mode", ["exact", "paper"])
def test_calmetric_command_prints_the_hand_case(tmp_path, capsys, mode):
    assert calmetric.main([str(hand_run(tmp_path)), "--metrics", mode]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[4] == "                          Baseline         Our Method"
    for line, (name, value) in zip(lines[5:], HAND[mode].items()):
        assert line.startswith(name + ":")
        assert line.split()[-1] == f"{100 * value:.1f}%", name


def test_calmetric_command_on_a_bad_folder(tmp_path, capsys):
    assert calmetric.main([str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_calmetric_ci_prints_each_interval_and_the_paired_difference(tmp_path, capsys):
    assert calmetric.main([str(hand_run(tmp_path)), "--ci", "--resamples", "200"]) == 0
    out = capsys.readouterr().out
    assert "95% bootstrap intervals (200 resamples of the images, seed 0):" in out
    odin = next(line for line in out.splitlines() if line.strip().startswith("ODIN "))
    assert "AUROC 75.0% [" in odin and "FPR at TPR 95% 66.7% [" in odin
    # the baseline is the hand case reflected: AUROC 25%, ODIN ahead by 50 points
    assert "ODIN - Baseline, AUROC: +50.0 [" in out and "DeLong p = " in out
    assert calmetric.main([str(hand_run(tmp_path)), "--ci", "--resamples", "200",
                           "--bootstrap-seed", "1"]) == 0
    assert capsys.readouterr().out != out                    # the seed decides the resamples


def test_calmetric_ci_on_bad_scores(tmp_path, capsys):
    """Constant scores: a note; one image a side, NaN: one-line errors; B < 100: refused."""
    flat = tmp_path / "flat"
    scorefiles.write_scores(flat, 1, 0.0, {("Our", "In"): [0.5] * 4, ("Our", "Out"): [0.5] * 3,
                                           ("Base", "In"): HAND_IN, ("Base", "Out"): HAND_OUT})
    assert calmetric.main([str(flat), "--ci", "--resamples", "100"]) == 0
    assert "ODIN: every image has the same score" in capsys.readouterr().out
    single = tmp_path / "single"
    scorefiles.write_scores(single, 1, 0.0, {("Our", "In"): [0.5], ("Our", "Out"): [0.2, 0.1],
                                             ("Base", "In"): [0.5], ("Base", "Out"): [0.2, 0.1]})
    assert calmetric.main([str(single), "--ci"]) == 2
    assert "1 in-distribution score(s): an interval needs at least two" in \
        capsys.readouterr().err
    with pytest.raises(SystemExit):
        calmetric.main([str(flat), "--ci", "--resamples", "50"])
    assert "must be at least 100, got 50" in capsys.readouterr().err
