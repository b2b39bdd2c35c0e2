"""On-disk cache of computed scores: in-distribution scores reused across OOD sets, and
tuning grids (layer 3).

A key hashes everything the cached value depends on (``scoring_key``): the
weights' sha256, the images' content digest, the normalisation, every
hyper-parameter (T, eps or their grids), the device type and the scoring code's
version, so a change of any of them recomputes. A scores entry holds the scores of a
contiguous range of image indices and serves any
range inside it (iSUN's 1,000..8,924 comes from the 1,000..9,999 of the other
sets). Each entry stores a checksum of its arrays; an entry that does not load
or does not match is reported, recomputed and replaced, never trusted.
"""
import hashlib
import json
import os

import numpy as np

from calData import SCORING_VERSION, Scores
from digests import array_digest as digest
from paths import cache_dir

FIELDS = ("baseline", "odin", "predictions", "labels")
ENTRY_FORMAT = 1  # of the files below


def key_of(**parts):
    return hashlib.sha256(json.dumps({"format": ENTRY_FORMAT, **parts}, sort_keys=True,
                                     default=str).encode()).hexdigest()[:32]


def scoring_key(*, what, weights, images, mean, std, device, **settings):
    """The key of scores computed by the scoring code: ``what`` (the kind of value),
    ``weights`` (sha256 of the weights file), ``images`` (content digest of the images
    scored), the normalisation ``mean`` and ``std``, the ``device`` type, and every
    hyper-parameter in ``settings``; the scoring code's version is added here."""
    return key_of(what=what, weights=weights, images=images, mean=list(mean), std=list(std),
                  device=str(device), scoring_version=SCORING_VERSION, **settings)


def _load_arrays(key):
    """The arrays of a valid entry, else None (a bad entry is reported, never trusted)."""
    path = cache_dir() / f"{key}.npz"
    if not path.exists():
        return None
    try:
        with np.load(path) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except Exception as e:  # any unreadable file is a corrupt entry
        print(f"Note: cache entry {path.name} is unreadable ({type(e).__name__}); recomputing")
        return None
    stored = str(arrays.pop("checksum", ""))
    if stored != digest(*(arrays[name] for name in sorted(arrays))):
        print(f"Note: cache entry {path.name} fails its checksum; recomputing")
        return None
    return arrays


def _save_arrays(key, **arrays):
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f"{key}.tmp.npz"
    np.savez(tmp, checksum=digest(*(arrays[name] for name in sorted(arrays))), **arrays)
    os.replace(tmp, folder / f"{key}.npz")


def load(key):
    """(first index, Scores) of a valid entry, else None."""
    arrays = _load_arrays(key)
    if arrays is None:
        return None
    return int(arrays["first"]), Scores(*(arrays[f] for f in FIELDS))


def save(key, first, scores):
    _save_arrays(key, first=np.asarray(first), **{f: getattr(scores, f) for f in FIELDS})


def covers(key, indices):
    """Whether a valid entry holds the scores of the images ``indices`` (a range)."""
    entry = load(key)
    if entry is None:
        return False
    first, scores = entry
    return first <= indices.start and indices.stop <= first + len(scores)


def cached_array(key, compute):
    """``compute()``'s array, from the cache when a valid entry exists."""
    arrays = _load_arrays(key)
    if arrays is not None:
        return arrays["values"]
    values = compute()
    _save_arrays(key, values=values)
    return values


def cached(key, indices, compute, refresh=False):
    """(Scores of the images ``indices`` (a range), reused?): from an entry covering them,
    else ``compute(indices)``, which then becomes the entry unless a larger one exists."""
    entry = None if refresh else load(key)
    if entry is not None:
        first, scores = entry
        if first <= indices.start and indices.stop <= first + len(scores):
            return scores.take(slice(indices.start - first, indices.stop - first)), True
    scores = compute(indices)
    if entry is None or len(scores) >= len(entry[1]):
        save(key, indices.start, scores)
    return scores, False
