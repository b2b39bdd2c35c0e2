"""In-distribution score cache: keyed on everything that changes a score, never trusts corruption."""
import numpy as np

import cache
from calData import Scores


def scores(seed=0):
    rng = np.random.default_rng(seed)
    return Scores(rng.random(5, dtype=np.float32), rng.random(5, dtype=np.float32),
                  rng.integers(0, 10, 5), rng.integers(0, 10, 5))


def test_reuse_and_key_changes(tmp_path, monkeypatch):
    monkeypatch.setattr(cache, "CACHE_DIR", tmp_path)
    calls = []

    def compute(indices):
        calls.append(1)
        return scores(len(calls))

    key = cache.key_of(model="m", data="d", temperature=1000, epsilon=0.0014)
    first, reused = cache.cached(key, range(0, 5), compute)
    again, reused_again = cache.cached(key, range(0, 5), compute)
    assert not reused and reused_again and len(calls) == 1
    assert np.array_equal(first.odin, again.odin)
    for change in (dict(model="m2"), dict(data="d2"), dict(temperature=1), dict(epsilon=0.0)):
        parts = dict(model="m", data="d", temperature=1000, epsilon=0.0014)
        parts.update(change)
        assert cache.key_of(**parts) != key
    cache.cached(key, range(0, 5), compute, refresh=True)
    assert len(calls) == 2


def test_corrupt_entries_are_recomputed(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cache, "CACHE_DIR", tmp_path)
    cache.save("k", 0, scores())
    path = tmp_path / "k.npz"
    path.write_bytes(path.read_bytes()[:100])                 # truncated
    assert cache.load("k") is None and "unreadable" in capsys.readouterr().out
    cache.save("k", 0, scores())
    with np.load(path) as npz:
        arrays = dict(npz)
    arrays["baseline"] = arrays["baseline"] + 1               # data changed, checksum kept
    np.savez(path, **arrays)
    assert cache.load("k") is None and "fails its checksum" in capsys.readouterr().out


def test_an_entry_serves_ranges_inside_it(tmp_path, monkeypatch):
    monkeypatch.setattr(cache, "CACHE_DIR", tmp_path)
    full = scores()
    computed = []

    def compute(indices):
        computed.append(indices)
        return full if len(indices) == 5 else full.take(slice(0, len(indices)))
    cache.cached("k", range(10, 15), compute)
    part, reused = cache.cached("k", range(11, 13), compute)
    assert reused and np.array_equal(part.odin, full.odin[1:3]) and len(computed) == 1
    _, reused = cache.cached("k", range(9, 12), compute)      # not covered: computed,
    assert not reused and cache.load("k")[0] == 10             # the larger entry is kept
