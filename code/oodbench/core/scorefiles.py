"""The run folder's format: score files and run.json (layer 0: core).

The run folder's format: the release's score files, their names, their ``T, eps, score``
lines, how T and eps are written, and ``run.json`` (what scoring writes and the
metrics, tables and figures read).

A run folder holds ``softmax_scores/confidence_<Method>_<Side>.txt``: Method ``Base``
(the baseline, max softmax) and ``Our`` (ODIN) for an ODIN run, as the release, or the
label of another detector (``Energy``, ``KNN``, ...), Side ``In`` (in-distribution) or
``Out``; and ``run.json``: the settings, accuracy, device and time of the run.
"""
import json
import os
import warnings
from pathlib import Path

import numpy as np

from oodbench.core.paths import UserError
from oodbench.core.shards import by_leader

SCORE_DIR = "softmax_scores"
METHODS = {"Base": "Baseline", "Our": "ODIN"}   # the release's file tags -> the names printed
ODIN_TAGS = tuple(METHODS)
SIDES = ("In", "Out")
RUN_INFO = "run.json"


def file_name(method, side):
    return f"confidence_{method}_{side}.txt"


def score_dir(folder):
    """The score files' folder of a run folder, or ``folder`` itself when it holds them."""
    folder = Path(folder)
    return folder / SCORE_DIR if (folder / SCORE_DIR).is_dir() else folder


@by_leader
def complete(folder, tags=ODIN_TAGS):
    """Whether ``folder`` (a run folder or a folder of score files) holds both sides of
    every method ``tags``."""
    scores = score_dir(folder)
    return all((scores / file_name(m, s)).is_file() for m in tags for s in SIDES)


@by_leader
def methods_in(folder):
    """The tags of the methods whose two files ``folder`` holds: Base, Our first."""
    scores = score_dir(folder)
    tags = {p.name[len("confidence_"):-len("_In.txt")] for p in scores.glob("confidence_*_In.txt")}
    tags = [t for t in tags if (scores / file_name(t, "Out")).is_file()]
    return sorted(tags, key=lambda t: (t not in METHODS, ODIN_TAGS.index(t) if t in METHODS
                                       else 0, t))


def method_name(tag):
    """The name tables print for a file tag: Baseline, ODIN, or the detector's label."""
    return METHODS.get(tag, tag)


def canonical_temperature(temperature):
    """T as the release wrote it: an integral T is an int (1000, not 1000.0)."""
    return int(temperature) if float(temperature).is_integer() else float(temperature)


def format_number(value):
    """T and eps as the release printed them: an int T as 1000, eps as 0.0014 or 0.0."""
    return str(value) if isinstance(value, int) else repr(float(value))


@by_leader
def write_score_file(path, temperature, epsilon, scores):
    """One ``T, eps, score`` line per image, written atomically."""
    prefix = f"{format_number(temperature)}, {format_number(epsilon)}, "
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        # str() of a float32 is its shortest round-trip form, as the release wrote it
        f.writelines(f"{prefix}{str(s)}\n" for s in np.asarray(scores, dtype=np.float32))
    os.replace(tmp, path)


@by_leader
def write_scores(folder, temperature, epsilon, scores):
    """The files in ``folder`` from ``scores``: {(method tag, side): values}."""
    os.makedirs(folder, exist_ok=True)
    for (method, side), values in scores.items():
        write_score_file(os.path.join(folder, file_name(method, side)), temperature, epsilon,
                         values)


@by_leader
def read_score_file(path):
    """(T, eps, scores) from a ``T, eps, score`` file; a clear error for anything else."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an empty file is reported below
            table = np.loadtxt(path, delimiter=",", ndmin=2)
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: unreadable score file ({e})") from None
    if table.shape[0] == 0 or table.shape[1] != 3:
        raise UserError(f"{path}: expected lines of 'T, eps, score', got shape {table.shape}")
    if not np.all(np.isfinite(table)):
        raise UserError(f"{path}: holds non-finite values")
    return table[0, 0], table[0, 1], table[:, 2]


def read_scores(folder, method):
    """(T, in-distribution scores, OOD scores) of one method in a run folder."""
    scores = score_dir(folder)
    temperature, _, ins = read_score_file(scores / file_name(method, "In"))
    _, _, outs = read_score_file(scores / file_name(method, "Out"))
    return canonical_temperature(temperature), ins, outs


@by_leader
def write_run_info(folder, info):
    """run.json, written atomically: it marks a run finished."""
    path = Path(folder) / RUN_INFO
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(info, indent=2) + "\n")
    os.replace(tmp, path)


@by_leader
def read_run_info(folder):
    """The run.json of ``folder`` as a dict; {} where there is none (a bare score folder) or
    it does not parse (said: the run is then not finished)."""
    path = Path(folder) / RUN_INFO
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except ValueError:
        print(f"Note: {path} does not parse: the run counts as unfinished")
        return {}
