"""The release's metric block from a run folder's score files (layer 5: reports).

Reads the ``confidence_<Method>_{In,Out}.txt`` files (core/scorefiles.py) of a run folder, or
of a bare folder holding them, and gives a column per method: Baseline vs "Our Method"
(ODIN) for an ODIN run, as the release, or the detector's name (Energy, KNN, ...):
FPR at 95% TPR, detection error, AUROC, AUPR-In and AUPR-Out, ``exact`` (default) or
the release's ``paper`` sweep, or the FSSD repository's AUROC, AUPRC and FPR at 80% TPR
(``fssd``), as defined in scoring/metrics.py. The command is code/calMetric.py.
"""
from oodbench.core import scorefiles
from oodbench.core.paths import UserError
from oodbench.reports import uncertainty
from oodbench.scoring.metrics import compute


# Below this many images a side the metrics are not meaningful: FPR at 95% TPR then rests on
# fewer than 5 in-distribution images past its threshold, and an AUROC of 0.9 has a standard
# error above 0.02 (Hanley & McNeil), so tenths of a point say nothing.
FEW_IMAGES = 100


def few_images_note(folder):
    """A warning when a run folder's sides hold fewer than FEW_IMAGES images, else ''."""
    tags = scorefiles.methods_in(folder)
    if not tags:
        return ""
    _, ins, outs = scorefiles.read_scores(folder, tags[0])
    if min(len(ins), len(outs)) >= FEW_IMAGES:
        return ""
    return (f"Warning: {len(ins)} in-distribution and {len(outs)} OOD images: with fewer than "
            f"{FEW_IMAGES} a side these metrics are not meaningful (a handful of images decide "
            "each one)")


def run_metrics(folder, mode="exact", num_classes=None):
    """{method name: metrics} for a run folder (or a folder of score files): 'Baseline' and
    'ODIN' for an ODIN run, the detector's label for another method's run."""
    scorefiles.check(folder)
    tags = scorefiles.methods_in(folder)
    if not tags:
        raise UserError(f"{folder}: no pair of confidence_<Method>_{{In,Out}}.txt files")
    result = {}
    for method in tags:
        temperature, ins, outs = scorefiles.read_scores(folder, method)
        # the release's sweep ranges are for max-softmax scores: Base at T = 1, ODIN at its T
        temperature = {"Base": 1, "Our": temperature}.get(method)
        result[scorefiles.method_name(method)] = compute(ins, outs, mode, num_classes,
                                                         temperature)
    return result


def run_scores(folder):
    """{method name: (in-distribution scores, OOD scores)} of a run folder, named as
    run_metrics names its columns."""
    scorefiles.check(folder)
    return {scorefiles.method_name(tag): scorefiles.read_scores(folder, tag)[1:]
            for tag in scorefiles.methods_in(folder)}


def cell_scores(sources):
    """{cell: (in scores, OOD scores)} from {cell: (run folder, method name)}, each folder
    read once: the input of reports/uncertainty.assess."""
    read = {}
    for folder, _ in sources.values():
        if folder not in read:
            read[folder] = run_scores(folder)
    return {cell: read[folder][name] for cell, (folder, name) in sources.items()}


def column_title(name):
    return "Our Method" if name == "ODIN" else name   # the release's wording


def metric_block(result, architecture="unknown", in_dataset="unknown", out_dataset="unknown"):
    """The release's printed block, in percent: one column per method of ``result``
    (Baseline vs "Our Method" for an ODIN run)."""
    widths = [13] + [18] * (len(result) - 1)
    lines = [f"{'Neural network architecture:':31}{architecture:>22}",
             f"{'In-distribution dataset:':31}{in_dataset:>22}",
             f"{'Out-of-distribution dataset:':31}{out_dataset:>22}",
             "",
             " " * 20 + "".join(f"{column_title(name):>{w + 1}}"
                                for name, w in zip(result, widths))]
    for metric in next(iter(result.values())):
        lines.append(f"{metric + ':':20}" + "".join(
            f"{100 * values[metric]:{w}.1f}%" for values, w in zip(result.values(), widths)))
    return "\n".join(lines)


def print_metrics(folder, mode, num_classes=None, resamples=None, seed=0):
    """The metric block of a run folder; with ``resamples``, the bootstrap intervals of its
    AUROC and FPR95 and the paired differences of its methods beneath."""
    info = scorefiles.read_run_info(folder)
    result = run_metrics(folder, mode, num_classes or info.get("num_classes"))
    print(metric_block(result, info.get("architecture", "unknown"),
                       info.get("in_dataset", "unknown"), info.get("out_label", "unknown")))
    note = few_images_note(folder)
    if note:
        print("\n" + note)
    if resamples:
        lines = uncertainty.interval_lines(run_scores(folder), resamples, seed)
        if mode != "exact":
            lines[0] += " of the exact metrics, not of the block's " + mode + " ones"
        print("\n" + "\n".join(lines))
