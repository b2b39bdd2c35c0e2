"""The run folder's format: score files and run.json (layer 0: core).

The run folder's format: the release's score files, their names, their ``T, eps, score``
lines, how T and eps are written, and ``run.json`` (what scoring writes and the
metrics, tables and figures read).

A run folder holds ``softmax_scores/confidence_<Method>_<Side>.txt``: Method ``Base``
(the baseline, max softmax) and ``Our`` (ODIN) for an ODIN run, as the release, or the
label of another detector (``Energy``, ``KNN``, ...), Side ``In`` (in-distribution) or
``Out``; and ``run.json``: the settings, accuracy, device and time of the run.
"""
import hashlib
import json
import time
import warnings
from pathlib import Path

import numpy as np

from oodbench.core import files
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


def score_lines(temperature, epsilon, scores):
    """One ``T, eps, score`` line per image."""
    prefix = f"{format_number(temperature)}, {format_number(epsilon)}, "
    # str() of a float32 is its shortest round-trip form, as the release wrote it
    return [f"{prefix}{str(s)}\n" for s in np.asarray(scores, dtype=np.float32)]


@by_leader
def write_score_file(path, temperature, epsilon, scores):
    """One ``T, eps, score`` line per image, written whole or not at all."""
    files.write_lines(path, score_lines(temperature, epsilon, scores))


@by_leader
def write_scores(folder, temperature, epsilon, scores):
    """Bare score files (no run.json, as the release wrote them) in ``folder`` from ``scores``:
    {(method tag, side): values}. A run folder is written by write_run."""
    for (method, side), values in scores.items():
        write_score_file(Path(folder) / file_name(method, side), temperature, epsilon, values)


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


def run_files(folder):
    """The files of a run present in ``folder``: its score files (in softmax_scores/, or in
    ``folder`` itself for a bare folder of them) and LA-OOD's deciding layers."""
    folder = Path(folder)
    return sorted([*score_dir(folder).glob("confidence_*.txt"),
                   *folder.glob("deciding_layer_*.txt")])


def _count_and_digest(data):
    """(lines, sha256) of a file's bytes: what run.json records of it."""
    return data.count(b"\n"), hashlib.sha256(data).hexdigest()


def _lines_and_digest(path):
    return _count_and_digest(Path(path).read_bytes())


@by_leader
def write_run(folder, identity, info, scores, temperature, epsilon, texts=None):
    """A run folder holding one run, replaced whole: ``scores`` {(method tag, side): values}
    as score files at (``temperature``, ``epsilon``), ``texts`` {file name: text} beside them,
    then run.json: ``info``, the run's ``identity`` and each file's line count and sha256.

    Until run.json is complete it names the run and says it is being written, so a folder
    stopped half-way is never read as finished; the files of an earlier run are removed
    first (check_folder has already refused a folder holding another run without --force)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files.write_text(folder / RUN_INFO, json.dumps({"run": identity, "complete": False}) + "\n")
    for path in run_files(folder):
        path.unlink(missing_ok=True)    # (a concurrent identical run may have removed it)
    contents = {f"{SCORE_DIR}/{file_name(method, side)}":
                "".join(score_lines(temperature, epsilon, values))
                for (method, side), values in scores.items()}
    contents.update(texts or {})
    record = {}
    for name, text in contents.items():
        files.write_text(folder / name, text)
        # digested as written, not read back (an identical run writing at the same moment may
        # be replacing the file)
        lines, sha256 = _count_and_digest(text.encode())
        record[name] = {"lines": lines, "sha256": sha256}
    files.write_text(folder / RUN_INFO, json.dumps(
        dict(info, run=identity, complete=True, files=record), indent=2) + "\n")


def _raw_info(folder):
    """(whether run.json is there, its dict or None where it does not parse)."""
    path = Path(folder) / RUN_INFO
    if not path.is_file():
        return False, None
    try:
        info = json.loads(path.read_text())
        return True, info if isinstance(info, dict) else None
    except ValueError:
        return True, None


@by_leader
def held_run(folder, identity=None):
    """What ``folder`` holds: None (no run), the identity of its run (run.json's "run"; a run
    of an earlier version, without one or without run.json, counts as ``identity`` when the
    folder bears its name, as runs/ folders do), or a description of files no run.json
    accounts for."""
    folder = Path(folder)
    there, info = _raw_info(folder)
    if there:
        if info is None:
            return identity if folder.name == identity else "a run whose run.json does not parse"
        if "run" in info:
            return info["run"]
        if folder.name == identity:
            return identity
        return (f"a run of {info.get('nn', '?')} on {info.get('out_dataset', '?')} made by an "
                "earlier version")
    if run_files(folder):     # an earlier version's unfinished run, if the folder bears its name
        return identity if folder.name == identity else "score files that no run.json describes"
    return None


@by_leader
def check_folder(folder, identity, force=False):
    """Before any work: a UserError if ``folder`` cannot become the run folder of
    ``identity``: it is a file, or it holds another run (unless ``force``: that run is then
    replaced whole when the new one is written)."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{folder} is a file, not a folder: choose another --out-dir")
    held = held_run(folder, identity) if folder.is_dir() else None
    if held is not None and held != identity and not force:
        raise UserError(f"{folder} holds another run ({held}): choose another folder, or pass "
                        "--force to replace that run")


def _legacy_problem(folder, info):
    """Why an earlier version's run (run.json without digests) cannot be read: each score
    file must have ``images_per_side`` lines, and the files be one run's (Base and Our for
    ODIN, one method's pair for another)."""
    tags = methods_in(folder)
    odin = info.get("method", "odin") == "odin"
    if (sorted(tags) != sorted(ODIN_TAGS)) if odin else len(tags) != 1:
        return (f"{score_dir(folder)}: holds the score files of {', '.join(tags) or 'no method'}"
                f", not of the one run its run.json describes")
    for path in run_files(folder):
        lines, _ = _lines_and_digest(path)
        if path.name.startswith("confidence_") and lines != info.get("images_per_side"):
            return (f"{path}: {lines} lines, but run.json says {info.get('images_per_side')} "
                    "images a side")
    return None


def _bare_problem(folder):
    """Why a folder of score files without run.json cannot be read: files of one side
    (In or Out) must agree in length across methods."""
    lengths = {}
    for path in run_files(folder):
        if path.name.startswith("confidence_"):
            side = path.stem.rsplit("_", 1)[1]
            lengths.setdefault(side, {})[path.name] = _lines_and_digest(path)[0]
    for side, by_file in lengths.items():
        if len(set(by_file.values())) > 1:
            listed = ", ".join(f"{name} {n}" for name, n in sorted(by_file.items()))
            return (f"{score_dir(folder)}: the {side} files disagree in length ({listed} "
                    "lines): one was cut or added to")
    return None


@by_leader
def problem(folder):
    """Why the run in ``folder`` cannot be trusted, in one line, or None: run.json unreadable
    or marking a run stopped while written, a score file missing, of another length or
    content than run.json records, or one run.json does not name (a stale file)."""
    folder = Path(folder)
    there, info = _raw_info(folder)
    if not there:
        return _bare_problem(folder)
    if info is None:
        return f"{folder / RUN_INFO} does not parse"
    if info.get("complete") is False:
        return (f"{folder}: its run was stopped while being written (or is being written "
                "now): run its command again")
    recorded = info.get("files")
    if recorded is None:
        return _legacy_problem(folder, info)
    if not isinstance(recorded, dict) or not all(
            isinstance(v, dict) and {"lines", "sha256"} <= set(v) for v in recorded.values()):
        return f"{folder / RUN_INFO}: its record of the files is not readable"
    for name, expected in recorded.items():
        path = folder / name
        if not path.is_file():
            return f"{path}: missing (run.json lists it)"
        lines, sha256 = _lines_and_digest(path)
        if lines != expected["lines"]:
            return f"{path}: {lines} lines, but run.json records {expected['lines']}"
        if sha256 != expected["sha256"]:
            return f"{path}: its content differs from the sha256 run.json records"
    for path in run_files(folder):
        if path.relative_to(folder).as_posix() not in recorded:
            return f"{path}: not a file of the run that run.json describes"
    return None


def settled(folder, identity, seconds=60.0):
    """Wait until the run ``identity`` just written into ``folder`` reads as complete: an
    identical run started at the same moment may be rewriting the same files (the same
    bytes) for a moment. A UserError (problem's line) if it has not settled in ``seconds``,
    or at once if the folder now holds another run."""
    deadline = time.monotonic() + seconds
    while True:
        why = problem(folder)
        if why is None:
            return
        _, info = _raw_info(folder)
        if (info or {}).get("run") != identity or time.monotonic() > deadline:
            raise UserError(why)
        time.sleep(0.2)


def check(folder):
    """A UserError naming the file if ``folder``'s run cannot be trusted (see problem)."""
    why = problem(folder)
    if why:
        raise UserError(why)


@by_leader
def read_run_info(folder):
    """The run.json of ``folder`` as a dict; {} where there is none (a bare score folder) or
    it does not parse (said: the run is then not finished)."""
    there, info = _raw_info(folder)
    if there and info is None:
        print(f"Note: {Path(folder) / RUN_INFO} does not parse: the run counts as unfinished")
    return info or {}


def finished(folder):
    """The run.json of a complete run folder whose files match it, else None (saying why
    when a run is there but cannot be trusted: it is then scored again)."""
    info = read_run_info(folder)
    if not info:
        return None
    why = problem(folder)
    if why:
        print(f"Note: {why}; scoring the run again")
        return None
    return info
