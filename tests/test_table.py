"""table.py end to end on a few real images: settings per row, three modes, resumable."""
import csv
import re

import numpy as np
import pytest
from torch.utils.data import Subset

from oodbench.commands import table
from oodbench.core.paths import figures_dir, results_dir
from oodbench.datasets.image_sets import cifar, ood_dataset
from oodbench.networks.registry import load_model
from oodbench.pipelines import runs, tuning
from oodbench.scoring import odin_scoring
from oodbench.scoring.metrics import METRICS, exact_metrics

ARGV = ["--nn", "densenet10", "--compare-modes", "--tune-images", "2", "--max-images", "4",
        "--gpu", "-1", "--batch-size", "4", "--compile", "off"]
# What each mode "chooses" here (tuning itself is tested in test_tune.py): distinct values,
# so that a row or column showing another mode's setting, or a run scored at another
# setting than its row says, is seen.
CHOSEN = {"paper": (2, 0.0002), "transfer": (5, 0.0004), "no-ood": (10, 0.0006)}


def fake_tune(tuner, mode, out_dataset=None):
    temperature, epsilon = CHOSEN[mode]
    tuned_on = {"paper": out_dataset, "transfer": "TIN_val", "no-ood": "noise"}[mode]
    return dict(nn=tuner.nn, mode=mode, tuned_on=tuned_on, images_per_side=tuner.count,
                temperature=temperature, epsilon=epsilon, temperatures=tuning.TEMPERATURES,
                epsilons=tuning.EPSILONS, fpr95=np.zeros((10, 21)).tolist())


def rows_of(markdown):
    """{first cell: row} of a Markdown table (its header row included)."""
    return {line.split(" | ")[0].strip("| "): line for line in markdown.splitlines()
            if line.startswith("| ")}


def expected_metrics(name, temperature, epsilon):
    """Baseline and ODIN metrics of images 1000..1003 of CIFAR-10 and ``name``, scored here
    directly, independently of runs.py and table.py."""
    model, spec = load_model("densenet10")
    sides = [odin_scoring.score_dataset(model, Subset(data, range(1000, 1004)), spec.mean, spec.std,
                                        temperature, epsilon, "cpu")
             for data in (cifar("CIFAR-10"), ood_dataset(name))]
    return {"Baseline": exact_metrics(sides[0].baseline, sides[1].baseline),
            "ODIN": exact_metrics(sides[0].odin, sides[1].odin)}


def test_tables_of_densenet10(installed, monkeypatch):
    monkeypatch.setattr(tuning.Tuner, "tune", fake_tune)
    monkeypatch.setattr(table, "tested_sets", lambda: ["iSUN", "TIN_crop", "Imagenet"])
    assert table.main(ARGV) == 0

    name = "densenet10_tune2_n4"     # a shortened protocol's table never replaces the whole one
    assert not (results_dir() / "densenet10.md").exists()
    rows = rows_of((results_dir() / f"{name}.md").read_text())
    release = expected_metrics("iSUN", 1000, 0.0014)
    # FPR95 and AUROC with their intervals: the values as the plain cells, once the interval
    # (' ±0.4') and the bold are taken away
    assert re.sub(r" ±\d+\.\d", "", rows["iSUN"]).replace("**", "") == \
        "| iSUN | 1000 | 0.0014 | release | " + " | ".join(
            table.percent_pair(release, m) for m in METRICS) + " |"
    assert rows["iSUN"].count(" ±") == 4
    assert "| 2 | 0.0002 | (a) TIN_crop |" in rows["Tiny-ImageNet (crop, rebuilt)"]
    assert "Imagenet is not available here" in rows["Tiny-ImageNet (crop)"]
    with open(results_dir() / f"{name}.csv") as f:
        records = list(csv.DictReader(f))
    isun = [r for r in records if r["ood_set"] == "iSUN"]
    assert [r["method"] for r in isun] == ["Baseline", "ODIN"]
    assert float(isun[1]["AUROC"]) == pytest.approx(100 * release["ODIN"]["AUROC"], abs=0.005)

    assert not (results_dir() / "README.md").exists()    # the index: whole tables only

    modes = (results_dir() / "densenet10_modes_tune2_n4.md").read_text()
    cells = rows_of(modes)["iSUN"].split(" | ")
    for i, mode in enumerate(tuning.MODES):   # each mode's (T, eps) in its own column
        assert cells[3 + 3 * i] == "%s, %s" % CHOSEN[mode]
    transfer = expected_metrics("iSUN", *CHOSEN["transfer"])
    assert re.sub(r" ±\d+\.\d", "", cells[7]).replace("**", "") == \
        f"{100 * transfer['ODIN']['FPR at TPR 95%']:.1f}"
    assert " ±" in cells[7] and "bootstrap interval" in modes
    assert re.sub(r" ±\d+\.\d", "", cells[8]).replace("**", "") == \
        f"{100 * transfer['ODIN']['AUROC']:.1f}"
    assert "n/a" in rows_of(modes)["Tiny-ImageNet (crop)"]
    figure_names = {p.name for p in (figures_dir() / "densenet10").iterdir()}
    assert "densenet10_iSUN_T1000_eps0.0014_n4_roc.png" in figure_names
    assert "tuning_densenet10_transfer_TIN_val_n2.png" in figure_names

    # A second call reuses every finished run.
    monkeypatch.setattr(runs, "score", lambda *a: pytest.fail("a finished run was rescored"))
    assert table.main(ARGV) == 0


def test_the_overall_progress_bar_counts_what_will_be_scored(installed):
    """Each (T, eps)'s in-distribution side is counted once, and not at all where the cache
    holds it."""
    options = runs.ScoringOptions("cpu", 4, "off")
    scored = runs.plan(runs.RunSettings("densenet10", "iSUN", 1000, 0.0014, max_images=4))
    model, _ = runs.load_scorer("densenet10", options, 8)
    runs.score(model, False, scored, options)
    plans = [runs.plan(runs.RunSettings("densenet10", name, t, 0.0014, max_images=4))
             for name, t in (("iSUN", 7), ("TIN_crop", 7), ("TIN_crop", 1000))]
    assert list(runs.images_to_score(plans, options).values()) == [8, 4, 4]


def test_a_model_that_cannot_run_here_gets_a_table_that_says_why(nothing_installed):
    assert table.main(["--nn", "wideresnet10", "--gpu", "-1"]) == 0
    markdown = (results_dir() / "wideresnet10.md").read_text()
    rows = rows_of(markdown)
    del rows["OOD set"]
    assert len(rows) == 11 and all("wideresnet10.pth not found" in r for r in rows.values())
    assert "bootstrap interval" not in markdown    # no set ran: no interval to caption


def test_another_setting_gets_its_own_table(nothing_installed):
    assert table.main(["--nn", "wideresnet10", "--gpu", "-1"]) == 0
    default = (results_dir() / "wideresnet10.md").read_text()
    assert table.main(["--nn", "wideresnet10", "--gpu", "-1", "--settings", "paper"]) == 0
    assert (results_dir() / "wideresnet10.md").read_text() == default
    assert "(T, eps) by 'paper'" in (results_dir() / "wideresnet10_paper.md").read_text()
    assert "| wideresnet10 |" in (results_dir() / "README.md").read_text()

    def name(settings, *flags):
        return table.table_name("resnet20", settings, table.build_parser().parse_args(
            ["--nn", "resnet20", *flags]))
    assert name("transfer") == "resnet20"   # the ResNets' default
    assert name("paper") == "resnet20_paper"
    assert name("transfer", "--tune-images", "200") == "resnet20_tune200"
    assert name("paper", "--max-images", "20", "--skip", "900", "--tune-images", "100") == \
        "resnet20_paper_tune100_skip900_n20"
    assert name("transfer", "--seed", "3", "--metrics", "paper") == "resnet20_seed3_paper"
    assert tuning.record_name(dict(nn="resnet20", mode="no-ood", tuned_on="noise",
                                   images_per_side=200, seed=3)) == \
        "resnet20_no-ood_noise_n200_seed3"


def test_the_index_lists_the_tables_of_whole_test_sets_only(tmp_path, monkeypatch):
    """results/README.md: one line per table.py table over every test image (any tuning);
    other CSVs under results/ (a run on fewer images, a comparison, LA-OOD's) are not tables
    of baseline / ODIN and are left out (LA-OOD's made the index fail before)."""
    monkeypatch.setenv("ODIN_RESULTS_DIR", str(tmp_path))
    head = ",".join(table.TABLE_FIELDS + list(METRICS) + ["note"]) + "\n"
    row = "iSUN,1000,0.0014,release,{},10,5,90,90,90,\n"
    for name in ("resnet20_tune200", "resnet20_n20"):
        (tmp_path / f"{name}.csv").write_text(head + row.format("Baseline") + row.format("ODIN"))
    (tmp_path / "laood_resnet20.csv").write_text("ood_set,convention,AUROC\niSUN,ours,90\n")
    (tmp_path / "empty.csv").write_text("")
    assert table.main(["--index"]) == 0
    index = (tmp_path / "README.md").read_text()
    assert "| resnet20_tune200 | [resnet20_tune200.md](resnet20_tune200.md) | 1 of 1 |" in index
    assert "resnet20_n20" not in index and "laood" not in index


def test_bad_input_stops_before_any_tuning(monkeypatch, capsys):
    monkeypatch.setattr(tuning.Tuner, "tune", lambda *a: pytest.fail("tuned before checking"))
    assert table.main(["--nn", "densenet10", "--tune-images", "1001", "--gpu", "-1"]) == 2
    assert table.main(["--nn", "densenet10", "--skip", "10", "--tune-images", "20"]) == 2
    assert table.main(["--nn", "nope", "--gpu", "-1"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("error: --tune-images must be from 1 to 1000")
    assert err[1].startswith("error: --tune-images must be from 1 to 10: the tuning images")
    assert "unknown model 'nope'" in err[2]
    assert not results_dir().exists()
