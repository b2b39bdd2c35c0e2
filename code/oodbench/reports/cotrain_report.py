"""The co-training study's table and figure (layer 5: reports): one network before and
after LA-OOD's co-training, per lambda, for every detector on every OOD set.

``networks``: [Network] in column order, the base first; ``metrics``: {(network name, set,
detector label): {metric: value}}.
"""
import csv
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np

from oodbench.core import files
from oodbench.reports import uncertainty
from oodbench.reports.figures import finish_panels
from oodbench.scoring.metrics import METRICS

SHOWN = ("AUROC", "FPR at TPR 95%")


@dataclass(frozen=True)
class Network:
    name: str                 # the model's name (registry, or a model from files')
    column: str               # as the tables head its column: "before", "lambda 0.001"
    lam: float | None         # None: the network co-training started from
    epoch: int
    sha256: str
    accuracy: float | None    # on the whole test set
    seconds_per_epoch: float | None
    svm_terms: tuple = ()     # the OCSVM term's mean per batch in each epoch (log.jsonl)


def _cells(assessment, column, networks, metric):
    """The cells of one (set or MEAN) row: each network's value ± its interval, and for a
    co-trained network the change from the base, in bold where the paired test tells them
    apart (Holm over the networks' pairs)."""
    base = networks[0]
    found = {n.name: assessment.intervals.get((column, n.name)) for n in networks}
    cells = []
    for i, n in enumerate(networks):
        if found[n.name] is None:
            cells.append("")
            continue
        text = uncertainty.cell(found[n.name][metric])
        if i > 0 and found[base.name] is not None:
            change = f"{100 * (found[n.name][metric].value - found[base.name][metric].value):+.1f}"
            pair = assessment.pair(column, metric, base.name, n.name)
            text += f" (**{change}**)" if pair is not None and pair.distinguishable else \
                f" ({change})"
        cells.append(text)
    return cells


def markdown(title, networks, rows, sets, assessments, notes):
    """The study as markdown: the networks, then per metric one table of detector x set rows
    (each co-trained network's change from the base in brackets) and the mean over sets.
    ``assessments``: {detector label: uncertainty.Assessment of its sets x networks}."""
    base = networks[0]
    lines = [title, "", "| network | lambda | epochs | sha256 | test accuracy (%) | "
             "seconds per epoch | OCSVM term per batch, epoch by epoch |",
             "|---|---|---|---|---|---|---|"]
    for n in networks:
        accuracy = "" if n.accuracy is None else f"{100 * n.accuracy:.2f}"
        seconds = "" if n.seconds_per_epoch is None else f"{n.seconds_per_epoch:.0f}"
        lam = "" if n.lam is None else f"{n.lam:g}"
        terms = ", ".join(f"{t:.1f}" for t in n.svm_terms)
        lines.append(f"| {n.column} | {lam} | {n.epoch} | `{n.sha256[:12]}` | {accuracy} | "
                     f"{seconds} | {terms} |")
    resamples = next(iter(assessments.values())).resamples
    for metric in SHOWN:
        better = "lower" if metric.startswith("FPR") else "higher"
        test = "DeLong's test" if metric == "AUROC" else "a paired bootstrap"
        lines += ["", f"**{metric}** (%, {better} is better; ± the 95% bootstrap interval over "
                      f"{resamples:,} resamples of the images, its larger side; in brackets: "
                      f"the change from {base.column}, bold where {test} tells the two "
                      "networks apart, Holm-corrected over the pairs of networks of each cell "
                      f"row, alpha = {uncertainty.ALPHA}; the mean rows by a paired bootstrap "
                      "of the mean over the sets)", "",
                  "| detector | OOD set | " + " | ".join(n.column for n in networks) + " |",
                  "|---|---|" + "---|" * len(networks)]
        for row in rows:
            for name, label in sets:
                lines.append(f"| {row} | {label} | "
                             + " | ".join(_cells(assessments[row], name, networks, metric))
                             + " |")
            lines.append(f"| **{row}** | **mean** | " + " | ".join(
                _cells(assessments[row], uncertainty.MEAN, networks, metric)) + " |")
    lines += [""] + notes
    return "\n".join(lines) + "\n"


def write_csv(path, networks, rows, sets, metrics, assessments):
    with files.writing(path, newline="") as f:
        out = csv.writer(f)
        out.writerow(["network", "lambda", "epoch", "sha256", "test_accuracy", "detector",
                      "ood_set", *METRICS, *uncertainty.interval_fields()])
        for n in networks:
            for row in rows:
                for name, _ in sets:
                    m = metrics.get((n.name, name, row))
                    if m is None:
                        continue
                    out.writerow([n.column, "" if n.lam is None else n.lam, n.epoch, n.sha256,
                                  "" if n.accuracy is None else f"{100 * n.accuracy:.2f}", row,
                                  name, *(f"{100 * m[k]:.2f}" for k in METRICS),
                                  *uncertainty.interval_cells(assessments[row], name, n.name)])


def write_pairs_csv(path, assessments):
    """Every pair of networks per (detector, set): reports/uncertainty.py's pairs."""
    with files.writing(path, newline="") as f:
        out = csv.writer(f)
        out.writerow(["detector", "ood_set", "metric", "first", "second", "difference",
                      "lower", "upper", "p_bootstrap", "p_delong", "p_holm", "distinguishable"])
        for row, assessment in assessments.items():
            for p in assessment.pairs:
                out.writerow([row, *uncertainty.pair_cells(p)])
    return path


def figure(path, title, networks, rows, sets, metrics):
    """AUROC per OOD set, one panel per detector, one bar per network."""
    columns = 3
    panels = int(np.ceil(len(rows) / columns))
    fig, axes = plt.subplots(panels, columns, figsize=(5 * columns, 3.4 * panels),
                             squeeze=False, sharey=True)
    width = 0.8 / len(networks)
    x = np.arange(len(sets))
    for ax, row in zip(axes.flat, rows):
        for i, n in enumerate(networks):
            values = [100 * metrics[n.name, s, row]["AUROC"] if (n.name, s, row) in metrics
                      else np.nan for s, _ in sets]
            ax.bar(x + (i - (len(networks) - 1) / 2) * width, values, width, label=n.column)
        ax.set_title(row, fontsize=9)
        ax.set_xticks(x, [label for _, label in sets], rotation=35, ha="right", fontsize=7)
        low = min((100 * m["AUROC"] for (_, _, r), m in metrics.items()), default=0)
        ax.set_ylim(max(0, low - 5), 100.5)
        ax.grid(axis="y", lw=0.4)
    return finish_panels(fig, axes, len(rows), title, path, legend_size=7)
