"""Score and grid caches: keyed on everything a value depends on, never stale, never corrupt."""
import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from oodbench.datasets.image_sets import NoiseImages, content_digest, ood_dataset
from oodbench.pipelines import tuning
from oodbench.scoring import cache, odin_scoring
from oodbench.scoring.odin_scoring import Scores

KEY_PARTS = dict(what="odin-scores", weights="w", images="i", mean=(0.5, 0.5, 0.5),
                 std=(0.2, 0.2, 0.2), device="cpu", temperature=1000, epsilon=0.0014)


def scores(seed=0):
    rng = np.random.default_rng(seed)
    return Scores(rng.random(5, dtype=np.float32), rng.random(5, dtype=np.float32),
                  rng.integers(0, 10, 5), rng.integers(0, 10, 5))


@pytest.mark.parametrize("part, other", [
    ("weights", "w2"), ("images", "i2"), ("mean", (0.4, 0.5, 0.5)), ("std", (0.2, 0.2, 0.3)),
    ("device", "cuda"), ("temperature", 1), ("epsilon", 0.0), ("what", "odin-grid")])
def test_every_part_changes_the_key(part, other):
    assert cache.scoring_key(**{**KEY_PARTS, part: other}) != cache.scoring_key(**KEY_PARTS)


def test_the_scoring_version_is_in_the_key(monkeypatch):
    key = cache.scoring_key(**KEY_PARTS)
    monkeypatch.setattr(cache, "SCORING_VERSION", odin_scoring.SCORING_VERSION + 1)
    assert cache.scoring_key(**KEY_PARTS) != key


MODULE = '''"""A module whose results are cached (layer 3)."""
import numpy as np

from oodbench.scoring.metrics import fpr_at_tpr


def score(x):
    """Higher means more in-distribution."""
    return -np.abs(x) + fpr_at_tpr(x, x, 0.95)   # a comment
'''


def code_key_of(tmp_path, monkeypatch, package, text):
    """cache.code_key of ``text`` saved as the module ``package``.scored, in a folder of its
    own (a new package name per call: keys are read once per process)."""
    folder = tmp_path / package
    folder.mkdir()
    (folder / "__init__.py").write_text("")
    (folder / "scored.py").write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path))
    return cache.code_key([f"{package}.scored"])


def test_a_moved_module_keeps_its_code_key(tmp_path, monkeypatch):
    """The key follows what the code computes: a module moved (another package, its imports
    rewritten, its docstrings and comments reworded) keeps it; any change to a statement
    that runs changes it."""
    key = code_key_of(tmp_path, monkeypatch, "before_move", MODULE)
    assert code_key_of(tmp_path, monkeypatch, "after_move", MODULE) == key
    moved = (MODULE.replace("from oodbench.scoring.metrics import", "from metrics import")
             .replace("(layer 3)", "(layer 3: scoring)").replace("# a comment", "# another")
             .replace("Higher means", "A higher score means"))
    assert code_key_of(tmp_path, monkeypatch, "rewritten_imports", moved) == key
    for name, changed in [("sign", MODULE.replace("-np.abs(x)", "np.abs(x)")),
                          ("level", MODULE.replace("0.95", "0.9")),
                          ("binding", MODULE.replace("import fpr_at_tpr",
                                                     "import fpr_at_tpr as other")),
                          ("added", MODULE + "\nTHRESHOLD = 1\n")]:
        assert code_key_of(tmp_path, monkeypatch, f"changed_{name}", changed) != key, name


def test_the_code_keys_name_modules_that_exist():
    """Every module named by a code key is one of the package's (a renamed module would
    otherwise raise only when a cached run starts)."""
    from oodbench.pipelines import fssd_protocol, layerwise_runs
    for sources in (fssd_protocol.SOURCES, layerwise_runs.SOURCES, ["oodbench.detectors.laood"]):
        assert cache.code_key(sources)


def test_reuse_and_refresh():
    calls = []

    def compute(indices):
        calls.append(1)
        return scores(len(calls))

    key = cache.scoring_key(**KEY_PARTS)
    first, reused = cache.cached(key, range(0, 5), compute)
    again, reused_again = cache.cached(key, range(0, 5), compute)
    assert not reused and reused_again and len(calls) == 1
    assert np.array_equal(first.odin, again.odin)
    cache.cached(key, range(0, 5), compute, refresh=True)
    assert len(calls) == 2


def test_corrupt_entries_are_recomputed(capsys):
    def save():
        cache.cached("k", range(5), lambda indices: scores(), refresh=True)
    save()
    path = cache.cache_dir() / "k.npz"
    path.write_bytes(path.read_bytes()[:100])                 # truncated
    assert cache.load_rows("k") is None and "unreadable" in capsys.readouterr().out
    save()
    with np.load(path) as npz:
        arrays = dict(npz)
    arrays["baseline"] = arrays["baseline"] + 1               # data changed, checksum kept
    np.savez(path, **arrays)
    assert cache.load_rows("k") is None and "fails its checksum" in capsys.readouterr().out


def test_an_entry_serves_ranges_inside_it():
    full = scores()
    computed = []

    def compute(indices):
        computed.append(indices)
        return full if len(indices) == 5 else full.take(slice(0, len(indices)))
    cache.cached("k", range(10, 15), compute)
    part, reused = cache.cached("k", range(11, 13), compute)
    assert reused and np.array_equal(part.odin, full.odin[1:3]) and len(computed) == 1
    _, reused = cache.cached("k", range(9, 12), compute)      # not covered: computed,
    assert not reused and cache.load_rows("k")[0] == 10        # the larger entry is kept


def test_content_digest_follows_the_images():
    images = torch.zeros(4, 3, 32, 32, dtype=torch.uint8)
    before = content_digest(TensorDataset(images, torch.zeros(4)))
    images[3, 0, 5, 5] = 1                                     # one pixel of one image
    assert content_digest(TensorDataset(images, torch.zeros(4))) != before
    assert content_digest(TensorDataset(images, torch.zeros(4)), range(3)) == \
        content_digest(TensorDataset(images[:3], torch.zeros(3)))   # only the images used
    assert content_digest(NoiseImages("Uniform", 0), range(2)) != \
        content_digest(NoiseImages("Uniform", 1), range(2))


class CountingGrids:
    """Stands in for tuning.grid_scores: counts the grids really computed."""

    def __init__(self):
        self.computed = []

    def __call__(self, model, dataset, *args, **kwargs):
        self.computed.append(len(dataset))
        return np.zeros((len(tuning.TEMPERATURES), len(tuning.EPSILONS), len(dataset)))


def test_a_changed_seed_or_rebuilt_set_is_not_served_a_stale_grid(installed, monkeypatch):
    grids = CountingGrids()
    monkeypatch.setattr(tuning, "grid_scores", grids)
    monkeypatch.setattr(tuning.Tuner, "model", lambda self: None)
    tuner = tuning.Tuner("densenet10", 3, "cpu", seed=0)
    tuner.grid("Uniform")
    tuner.grid("Uniform")
    assert len(grids.computed) == 1                            # cached
    tuning.Tuner("densenet10", 3, "cpu", seed=1).grid("Uniform")
    assert len(grids.computed) == 2                            # another seed: other images

    real = ood_dataset("TIN_crop")
    rebuilt = TensorDataset(torch.stack([real[i][0] for i in range(3)]), torch.zeros(3))
    monkeypatch.setattr(tuning, "ood_dataset", lambda name, seed, size=32: rebuilt)
    tuner.grid("TIN_crop")
    tuner.grid("TIN_crop")
    assert len(grids.computed) == 3
    rebuilt.tensors[0][1, 2, 7, 7] += 1                        # the set rebuilt, one pixel off
    tuner.grid("TIN_crop")
    assert len(grids.computed) == 4


def test_changed_images_are_not_served_stale_scores(installed):
    """The in-distribution score cache of a run: rebuilt images get a new key."""
    from oodbench.pipelines import runs
    plan = runs.plan(runs.RunSettings("densenet10", "Uniform", 1000, 0.0014, max_images=2))
    key = runs.in_distribution_key(plan, "cpu")
    images = plan.ind.images.clone()
    images[1001, 0, 0, 0] ^= 1
    changed = runs.Plan(plan.settings, plan.spec, plan.ood_set,
                        type(plan.ind)(images, plan.ind.labels), plan.ood, plan.indices,
                        plan.folder)
    assert runs.in_distribution_key(changed, "cpu") != key
    assert runs.in_distribution_key(plan, "cpu") == key
