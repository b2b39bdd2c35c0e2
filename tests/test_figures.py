"""Figures are drawn from a run folder's score files."""
import numpy as np

from oodbench.commands import figures
from oodbench.core.paths import figures_dir
from oodbench.scoring import odin_scoring


def test_roc_and_histogram_files(tmp_path):
    rng = np.random.default_rng(0)
    make = lambda lo: odin_scoring.Scores(rng.uniform(lo, 1, 50).astype(np.float32),  # noqa: E731
                                          rng.uniform(lo / 10, 0.12, 50).astype(np.float32),
                                          np.zeros(50), np.zeros(50))
    odin_scoring.write_scores(tmp_path / "softmax_scores", 1000, 0.0014, make(0.5), make(0.1))
    assert figures.main([str(tmp_path)]) == 0
    written = sorted(p.name for p in (figures_dir() / "runs").iterdir())  # no run.json
    assert written == [f"{tmp_path.name}_hist.png", f"{tmp_path.name}_roc.png"]
    assert all((figures_dir() / "runs" / name).stat().st_size > 10000 for name in written)
