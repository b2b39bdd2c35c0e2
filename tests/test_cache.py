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

    def compute():
        calls.append(1)
        return scores(len(calls))

    key = cache.key_of(model="m", data="d", temperature=1000, epsilon=0.0014)
    first, reused = cache.cached(key, compute)
    again, reused_again = cache.cached(key, compute)
    assert not reused and reused_again and len(calls) == 1
    assert np.array_equal(first.odin, again.odin)
    for change in (dict(model="m2"), dict(data="d2"), dict(temperature=1), dict(epsilon=0.0)):
        parts = dict(model="m", data="d", temperature=1000, epsilon=0.0014)
        parts.update(change)
        assert cache.key_of(**parts) != key
    cache.cached(key, compute, refresh=True)
    assert len(calls) == 2


def test_corrupt_entries_are_recomputed(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cache, "CACHE_DIR", tmp_path)
    cache.save("k", scores())
    path = tmp_path / "k.npz"
    path.write_bytes(path.read_bytes()[:100])                 # truncated
    assert cache.load("k") is None and "unreadable" in capsys.readouterr().out
    tampered = scores()
    np.savez(path, checksum=cache._checksum(tampered), baseline=tampered.baseline + 1,
             odin=tampered.odin, predictions=tampered.predictions, labels=tampered.labels)
    assert cache.load("k") is None and "fails its checksum" in capsys.readouterr().out
