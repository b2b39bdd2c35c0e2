"""The on-disk cache of scores, features and fits (layer 3: scoring).

On-disk cache of computed scores: in-distribution scores reused across OOD sets, and
tuning grids.

A key hashes everything the cached value depends on (``scoring_key``): the
weights' sha256, the images' content digest, the normalisation, every
hyper-parameter (T, eps or their grids), the device type and the scoring code's
version, so a change of any of them recomputes. A scores entry holds the scores of a
contiguous range of image indices and serves any
range inside it (iSUN's 1,000..8,924 comes from the 1,000..9,999 of the other
sets). Each entry stores a checksum of its arrays; an entry that does not load
or does not match is reported, recomputed and replaced, never trusted.
"""
import ast
import functools
import hashlib
import importlib.util
import json
from pathlib import Path

import numpy as np
import sklearn
import torch

from oodbench.core import files
from oodbench.core.digests import array_digest as digest
from oodbench.core.paths import cache_dir, shown
from oodbench.core.shards import by_leader
from oodbench.scoring.odin_scoring import SCORING_VERSION, Scores

FIELDS = ("baseline", "odin", "predictions", "labels")
ENTRY_FORMAT = 1  # of the files below


def key_of(**parts):
    return hashlib.sha256(json.dumps({"format": ENTRY_FORMAT, **parts}, sort_keys=True,
                                     default=str).encode()).hexdigest()[:32]


def code_key(modules):
    """A key of the code a value depends on: the meaning of each of ``modules`` (dotted
    names, e.g. ``"oodbench.scoring.odin_scoring"``; see ``code_meaning``) and the versions
    of torch, numpy and scikit-learn. Neither a module's file path nor its name is part of
    the key, so moving a module keeps the keys of what it computed. Read once per process,
    at the first call: the code that runs is the code the process loaded, not what the
    files hold after an edit made while it runs."""
    return _code_key(tuple(modules))


@functools.cache
def _code_key(modules):
    return key_of(code=[code_meaning(_source_of(name)) for name in modules],
                  torch=torch.__version__, numpy=np.__version__, sklearn=sklearn.__version__)


def _source_of(module):
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.origin:
        raise ValueError(f"code_key: no module named {module}")
    return Path(spec.origin).read_text()


def code_meaning(source):
    """A digest of what Python source text computes: its syntax tree without docstrings,
    comments or layout, and each import reduced to the names it binds (not the module
    they come from). Rewording a docstring or moving an imported module keeps it; any
    change to a statement that runs changes it."""
    tree = ast.parse(source)
    bound = []
    for node in ast.walk(tree):
        for field in ("body", "orelse", "finalbody"):
            statements = getattr(node, field, None)
            if not isinstance(statements, list):
                continue
            kept = []
            for statement in statements:
                if isinstance(statement, (ast.Import, ast.ImportFrom)):
                    bound += [alias.asname or alias.name.split(".")[0]
                              for alias in statement.names]
                elif not (isinstance(statement, ast.Expr)
                          and isinstance(statement.value, ast.Constant)
                          and isinstance(statement.value.value, str)):   # a docstring
                    kept.append(statement)
            setattr(node, field, kept)
    return hashlib.sha256((ast.dump(tree) + repr(sorted(bound))).encode()).hexdigest()


def scoring_key(*, what, weights, images, mean, std, device, **settings):
    """The key of scores computed by the scoring code: ``what`` (the kind of value),
    ``weights`` (sha256 of the weights file), ``images`` (content digest of the images
    scored), the normalisation ``mean`` and ``std``, the ``device`` type, and every
    hyper-parameter in ``settings``; the scoring code's version is added here."""
    return key_of(what=what, weights=weights, images=images, mean=list(mean), std=list(std),
                  device=str(device), scoring_version=SCORING_VERSION, **settings)


@by_leader
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


@by_leader
def _save_arrays(key, **arrays):
    with files.replacing(cache_dir() / f"{key}.npz") as tmp:
        np.savez(tmp, checksum=digest(*(arrays[name] for name in sorted(arrays))), **arrays)


def load_rows(key):
    """(first index, {name: array}) of a valid entry of rows (one per image), else None."""
    arrays = _load_arrays(key)
    if arrays is None:
        return None
    return int(arrays.pop("first")), arrays


def _rows(arrays):
    return len(next(iter(arrays.values())))


def _covering(entry, indices):
    return entry is not None and entry[0] <= indices.start and \
        indices.stop <= entry[0] + _rows(entry[1])


def covers(key, indices):
    """Whether a valid entry holds the rows of the images ``indices`` (a range)."""
    return _covering(load_rows(key), indices)


def cached_rows(key, indices, compute, refresh=False, what=None):
    """({name: rows of the images ``indices`` (a range)}, reused?): from an entry covering
    them, else ``compute(indices)``'s arrays, which then become the entry unless a larger
    one exists. ``refresh`` computes even when an entry covers them; a larger entry is
    never replaced by a smaller one. ``what``, if given, names the values in a note printed
    when they are reused."""
    entry = load_rows(key)
    if not refresh and _covering(entry, indices):
        first = entry[0]
        part = slice(indices.start - first, indices.stop - first)
        if what:
            print(f"Note: {what} reused from {shown(cache_dir() / f'{key}.npz')}")
        return {name: values[part] for name, values in entry[1].items()}, True
    arrays = compute(indices)
    if entry is None or _rows(arrays) >= _rows(entry[1]):
        _save_arrays(key, first=np.asarray(indices.start), **arrays)
    return arrays, False


def load_arrays(key):
    """{name: array} of a valid entry made by ``save_arrays``, else None."""
    return _load_arrays(key)


def save_arrays(key, **arrays):
    _save_arrays(key, **arrays)


def load_array(key):
    """The array of a valid entry made by ``save_array`` or ``cached_array``, else None."""
    arrays = _load_arrays(key)
    return None if arrays is None else arrays["values"]


def save_array(key, values):
    _save_arrays(key, values=values)


def cached_array(key, compute):
    """``compute()``'s array, from the cache when a valid entry exists."""
    values = load_array(key)
    if values is None:
        values = compute()
        save_array(key, values)
    return values


def cached(key, indices, compute, refresh=False):
    """(Scores of the images ``indices`` (a range), reused?), kept as ``cached_rows`` keeps
    rows; ``compute(indices)`` gives Scores."""
    def compute_fields(wanted):
        scores = compute(wanted)
        return {f: getattr(scores, f) for f in FIELDS}
    arrays, reused = cached_rows(key, indices, compute_fields, refresh)
    return Scores(*(arrays[f] for f in FIELDS)), reused
