"""The spread over networks (spread_table.py): mean ± std and ranks from each network's own
results CSVs, by hand; detectors missing on a network listed, not averaged; a network without
tables named with the command that makes them."""
import csv

import pytest

from oodbench.commands import spread_table
from oodbench.core.paths import UserError

METRICS = ["FPR at TPR 95%", "Detection error", "AUROC", "AUPR In", "AUPR Out"]


def write(path, header, rows):
    with open(path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(header)
        out.writerows(rows)


@pytest.fixture
def tables(tmp_path, monkeypatch):
    monkeypatch.setenv("ODIN_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setenv("ODIN_FIGURES_DIR", str(tmp_path / "figures"))
    results = tmp_path / "results"
    results.mkdir()
    # densenet10 and necas_densenet10: comparisons (ODIN, KNN); dice_densenet10: only its
    # ODIN table
    head = ["ood_set", "detector", *METRICS, "note"]
    write(results / "detectors_densenet10_tune200.csv", head, [
        ["iSUN", "ODIN", 6, 5, 98, 98, 98, ""], ["iSUN", "KNN", 13, 7, 97, 97, 97, ""],
        ["MNIST", "ODIN", 1, 1, 99, 99, 99, ""], ["MNIST", "KNN", 4, 3, 99, 99, 99, ""],
        ["LSUN", "", "", "", "", "", "", "not available here"]])
    write(results / "detectors_necas_densenet10_tune200.csv", head, [
        ["iSUN", "ODIN", 10, 5, 96, 98, 98, ""], ["MNIST", "ODIN", 3, 1, 97, 99, 99, ""],
        ["iSUN", "KNN", 12, 5, 97, 98, 98, ""], ["MNIST", "KNN", 2, 1, 98, 99, 99, ""]])
    write(results / "dice_densenet10_tune200.csv",
          ["ood_set", "temperature", "epsilon", "chosen_by", "method", *METRICS, "note"], [
              ["iSUN", 1000, 0.001, "(b)", "Baseline", 40, 10, 94, 95, 93, ""],
              ["iSUN", 1000, 0.001, "(b)", "ODIN", 8, 5, 97, 98, 98, ""],
              ["MNIST", 1000, 0.001, "(b)", "Baseline", 30, 10, 95, 95, 93, ""],
              ["MNIST", 1000, 0.001, "(b)", "ODIN", 2, 1, 98, 99, 99, ""]])
    return results


def test_mean_and_std_over_the_networks_by_hand(tables, capsys):
    assert spread_table.main(["--group", "densenet-bc-100"]) == 0
    text = (tables / "spread_densenet-bc-100_tune200.md").read_text()
    # ODIN's iSUN AUROC: 98, 97 (dice), 96 (necas): mean 97.0, sample std 1.0
    assert "| ODIN | 97.0 ± 1.0 | 98.0 ± 1.0 | 97.5 ± 1.0 |" in text   # mean: of 98.5, 97.5, 96.5
    rows = list(csv.DictReader(open(tables / "spread_densenet-bc-100_tune200.csv")))
    (isun,) = [r for r in rows if (r["ood_set"], r["detector"], r["metric"]) ==
               ("iSUN", "ODIN", "FPR at TPR 95%")]
    assert (isun["mean"], isun["std"], isun["densenet10"], isun["dice_densenet10"]) == (
        "8.00", "2.00", "6.00", "8.00")
    # KNN is in one comparison only, the baseline in dice's table only: listed, not averaged
    assert "detector KNN: only in the tables of densenet10, necas_densenet10" in text
    assert "| KNN |" not in text and "LSUN" not in text.split("Not averaged")[0]
    assert (tables.parent / "figures" / "spread_densenet-bc-100_tune200.png").stat().st_size > 5000


def test_ranks_per_network(tables, capsys):
    assert spread_table.main(["--models", "densenet10", "necas_densenet10", "--name",
                              "two"]) == 0
    text = (tables / "spread_two_tune200.md").read_text()
    # mean AUROC over the sets: ODIN first on densenet10, KNN on necas; FPR95 the other way
    assert "| ODIN | 98.5 (#1) | 96.5 (#2) |" in text
    assert "| KNN | 98.0 (#2) | 97.5 (#1) |" in text
    assert "| ODIN | 3.5 (#1) | 6.5 (#1) |" in text and "| KNN | 8.5 (#2) | 7.0 (#2) |" in text


def test_a_network_without_tables_is_named_with_the_command(tables, capsys):
    (tables / "dice_densenet10_tune200.csv").unlink()
    assert spread_table.main(["--group", "densenet-bc-100"]) == 2
    assert "python compare.py --nn dice_densenet10 --tune-images 200" in capsys.readouterr().err
    with pytest.raises(UserError, match="at least two different networks"):
        spread_table.report(spread_table.build_parser().parse_args(
            ["--models", "densenet10", "densenet10"]))
