"""table.py end to end on a few real images: settings per row, three modes, resumable."""
import csv

import pytest

import cache
import figures
import main
import table
import tune

ARGV = ["--nn", "densenet10", "--compare-modes", "--tune-images", "2", "--max-images", "4",
        "--gpu", "-1", "--batch-size", "4", "--compile", "off"]


def rows_of(markdown):
    """{first cell: row} of a Markdown table (its header row included)."""
    return {line.split(" | ")[0].strip("| "): line for line in markdown.splitlines()
            if line.startswith("| ")}


def test_tables_of_densenet10(installed, tmp_path, monkeypatch):
    monkeypatch.setattr(cache, "CACHE_DIR", tmp_path / "cache")
    monkeypatch.setattr(main, "RUNS_DIR", tmp_path / "runs")
    monkeypatch.setattr(table, "RESULTS_DIR", tmp_path / "results")
    monkeypatch.setattr(figures, "FIGURES_DIR", tmp_path / "figures")
    monkeypatch.setattr(tune, "RECORDS_DIR", tmp_path / "tuning")
    monkeypatch.setattr(table, "tested_sets", lambda: ["iSUN", "TIN_crop", "Imagenet"])
    assert table.main_cli(ARGV) == 0

    rows = rows_of((tmp_path / "results" / "densenet10.md").read_text())
    assert "| 1000 | 0.0014 | release |" in rows["iSUN"]             # the release's setting
    assert "| (a) TIN_crop |" in rows["Tiny-ImageNet (crop, rebuilt)"]  # tuned, not in the release
    assert "Imagenet is not available here" in rows["Tiny-ImageNet (crop)"]
    with open(tmp_path / "results" / "densenet10.csv") as f:
        records = list(csv.DictReader(f))
    assert [r["method"] for r in records if r["ood_set"] == "iSUN"] == ["Baseline", "ODIN"]
    assert all(0 <= float(r["AUROC"]) <= 100 for r in records if r["method"])

    summary = rows_of((tmp_path / "results" / "README.md").read_text())["densenet10"]
    assert "| 2 of 3 |" in summary and "release" in summary and "(a)" in summary

    modes = rows_of((tmp_path / "results" / "densenet10_modes.md").read_text())
    tuned = {m: tune.Tuner("densenet10", 2, "cpu").tune(m, "iSUN") for m in tune.MODES}
    cells = modes["iSUN"].split(" | ")
    for i, mode in enumerate(tune.MODES):   # (T, eps) of each mode in its own column
        assert cells[3 + 3 * i] == f"{tuned[mode]['temperature']}, {tuned[mode]['epsilon']}"
    assert "n/a" in modes["Tiny-ImageNet (crop)"]
    figure_names = {p.name for p in (tmp_path / "figures" / "densenet10").iterdir()}
    assert "densenet10_iSUN_T1000_eps0.0014_n4_roc.png" in figure_names
    assert "tuning_densenet10_transfer_TIN_val_n2.png" in figure_names

    # The overall progress bar counts each (T, eps)'s in-distribution side once, and not at all
    # where the cache holds it (iSUN at T = 1000, eps = 0.0014 was scored above).
    runs = {}
    for name, temperature in (("iSUN", 7), ("TIN_crop", 7), ("TIN_crop", 1000)):
        run = main.build_parser().parse_args(["--out_dataset", name, "--max-images", "4",
                                              "--temperature", str(temperature)])
        main.check_args(run)
        runs[(name, temperature)] = (run, main.plan(run))
    assert table.images_to_score(list(runs), runs, run, "cpu") == {
        ("iSUN", 7): 8, ("TIN_crop", 7): 4, ("TIN_crop", 1000): 4}

    # A second call reuses every finished run and every grid.
    monkeypatch.setattr(main, "score_pair", lambda *a: pytest.fail("a finished run was rescored"))
    monkeypatch.setattr(tune, "grid_scores", lambda *a, **k: pytest.fail("a grid was recomputed"))
    assert table.main_cli(ARGV) == 0


def test_a_model_that_cannot_run_here_gets_a_table_that_says_why(tmp_path, monkeypatch):
    monkeypatch.setattr(table, "RESULTS_DIR", tmp_path)
    assert table.main_cli(["--nn", "wideresnet10", "--gpu", "-1"]) == 0
    rows = rows_of((tmp_path / "wideresnet10.md").read_text())
    del rows["OOD set"]
    assert len(rows) == 11 and all("wideresnet10.pth not found" in r for r in rows.values())


def test_another_setting_gets_its_own_table(tmp_path, monkeypatch):
    monkeypatch.setattr(table, "RESULTS_DIR", tmp_path)
    assert table.main_cli(["--nn", "wideresnet10", "--gpu", "-1"]) == 0
    default = (tmp_path / "wideresnet10.md").read_text()
    assert table.main_cli(["--nn", "wideresnet10", "--gpu", "-1", "--settings", "paper"]) == 0
    assert (tmp_path / "wideresnet10.md").read_text() == default
    assert "(T, eps) by 'paper'" in (tmp_path / "wideresnet10_paper.md").read_text()
    assert table.table_name("resnet20", "transfer") == "resnet20"   # the ResNets' default
    assert table.table_name("resnet20", "paper") == "resnet20_paper"
