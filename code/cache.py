"""On-disk cache of in-distribution scores, reused across OOD sets.

The in-distribution side of a run depends only on the model weights, the
images, their indices and (T, eps): the key hashes all of them, so a change of
any recomputes. Each entry stores a checksum of its arrays; an entry that does
not load or does not match is reported, recomputed and replaced, never trusted.
"""
import hashlib
import json
import os

import numpy as np

from calData import Scores
from paths import RUNS_DIR

CACHE_DIR = RUNS_DIR / ".cache"
FIELDS = ("baseline", "odin", "predictions", "labels")
VERSION = 1  # bump when scoring changes what it computes


def digest(*arrays):
    h = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array)
        h.update(str((array.dtype.str, array.shape)).encode())
        h.update(array.tobytes())
    return h.hexdigest()


def key_of(**parts):
    return hashlib.sha256(json.dumps({"version": VERSION, **parts}, sort_keys=True,
                                     default=str).encode()).hexdigest()[:32]


def _checksum(scores):
    return digest(*(getattr(scores, f) for f in FIELDS))


def load(key):
    path = CACHE_DIR / f"{key}.npz"
    if not path.exists():
        return None
    try:
        with np.load(path) as npz:
            scores = Scores(*(npz[f] for f in FIELDS))
            stored = str(npz["checksum"])
    except Exception as e:  # any unreadable file is a corrupt entry
        print(f"Note: cache entry {path.name} is unreadable ({type(e).__name__}); recomputing")
        return None
    if stored != _checksum(scores):
        print(f"Note: cache entry {path.name} fails its checksum; recomputing")
        return None
    return scores


def save(key, scores):
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    tmp = CACHE_DIR / f"{key}.tmp.npz"
    np.savez(tmp, checksum=_checksum(scores), **{f: getattr(scores, f) for f in FIELDS})
    os.replace(tmp, CACHE_DIR / f"{key}.npz")


def cached(key, compute, refresh=False):
    """(``compute()``'s Scores, reused?): from the cache when a valid entry exists."""
    scores = None if refresh else load(key)
    if scores is None:
        scores = compute()
        save(key, scores)
        return scores, False
    return scores, True
