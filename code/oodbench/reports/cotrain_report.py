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
from oodbench.reports.figures import save
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


def _cell(value, base):
    if value is None:
        return ""
    if base is None:
        return f"{100 * value:.1f}"
    return f"{100 * value:.1f} ({100 * (value - base):+.1f})"


def markdown(title, networks, rows, sets, metrics, notes):
    """The study as markdown: the networks, then per metric one table of detector x set rows
    (each co-trained network's change from the base in brackets) and the mean over sets."""
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
    for metric in SHOWN:
        better = "lower" if metric.startswith("FPR") else "higher"
        lines += ["", f"**{metric}** (%, {better} is better; in brackets: the change from "
                      f"{base.column})", "",
                  "| detector | OOD set | " + " | ".join(n.column for n in networks) + " |",
                  "|---|---|" + "---|" * len(networks)]
        for row in rows:
            means = {}
            for name, label in sets:
                values = [metrics.get((n.name, name, row), {}).get(metric) for n in networks]
                for n, v in zip(networks, values):
                    means.setdefault(n.name, []).append(v)
                lines.append(f"| {row} | {label} | " + " | ".join(
                    _cell(v, None if i == 0 or values[0] is None else values[0])
                    for i, v in enumerate(values)) + " |")
            mean = [None if None in means[n.name] else float(np.mean(means[n.name]))
                    for n in networks]
            lines.append(f"| **{row}** | **mean** | " + " | ".join(
                _cell(v, None if i == 0 or mean[0] is None else mean[0])
                for i, v in enumerate(mean)) + " |")
    lines += [""] + notes
    return "\n".join(lines) + "\n"


def write_csv(path, networks, rows, sets, metrics):
    with files.writing(path, newline="") as f:
        out = csv.writer(f)
        out.writerow(["network", "lambda", "epoch", "sha256", "test_accuracy", "detector",
                      "ood_set", *METRICS])
        for n in networks:
            for row in rows:
                for name, _ in sets:
                    m = metrics.get((n.name, name, row))
                    if m is None:
                        continue
                    out.writerow([n.column, "" if n.lam is None else n.lam, n.epoch, n.sha256,
                                  "" if n.accuracy is None else f"{100 * n.accuracy:.2f}", row,
                                  name, *(f"{100 * m[k]:.2f}" for k in METRICS)])


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
    for ax in axes.flat[len(rows):]:
        ax.axis("off")
    axes[0, 0].set_ylabel("AUROC (%)")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    save(fig, path)
    return path
