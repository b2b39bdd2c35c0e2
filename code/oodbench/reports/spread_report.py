"""The spread of a comparison over networks (layer 5: reports): mean ± std per (detector,
set) over independent trainings, each network's value, and each detector's rank per network.
Values are in percent, as the results CSVs hold them; the standard deviation is the sample's
(ddof = 1), as OpenOOD reports over its three trainings.
"""
import csv
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np

from oodbench.core import files
from oodbench.reports.figures import finish_panels

SHOWN = ("AUROC", "FPR at TPR 95%")


@dataclass
class Spread:
    models: list
    rows: list       # the detectors every network has, in the first network's order
    sets: list       # the OOD sets every network has, in the first network's order
    values: dict     # (model, set, detector) -> {metric: percent}
    left_out: list   # "detector: on a, b only" / "set: ..." lines

    @classmethod
    def of(cls, tables):
        """From {model: {(set, detector): {metric: percent}}}: the sets and detectors of
        every network's tables, the others listed in ``left_out``."""
        models = list(tables)
        kept, left_out = {}, []
        for kind, position in (("OOD set", 0), ("detector", 1)):
            kept[position] = []
            for item in dict.fromkeys(k[position] for m in models for k in tables[m]):
                having = [m for m in models if any(k[position] == item for k in tables[m])]
                if len(having) == len(models):
                    kept[position].append(item)
                else:
                    left_out.append(f"{kind} {item}: only in the tables of {', '.join(having)}")
        sets, rows = kept[0], []
        for row in kept[1]:
            if all((s, row) in tables[m] for m in models for s in sets):
                rows.append(row)
            else:
                left_out.append(f"detector {row}: not on every set of every network")
        values = {(m, s, r): tables[m][s, r] for m in models for s in sets for r in rows}
        return cls(models, rows, sets, values, left_out)

    def across(self, s, row, metric):
        """(mean, std) over the networks of one cell."""
        found = [self.values[m, s, row][metric] for m in self.models]
        return float(np.mean(found)), float(np.std(found, ddof=1))

    def mean_over_sets(self, model, row, metric):
        return float(np.mean([self.values[model, s, row][metric] for s in self.sets]))

    def ranks(self, metric):
        """{model: {detector: rank}}: 1 = the best mean over the sets on that network."""
        found = {}
        for m in self.models:
            means = {r: self.mean_over_sets(m, r, metric) for r in self.rows}
            order = sorted(means, key=means.get, reverse=not metric.startswith("FPR"))
            found[m] = {r: order.index(r) + 1 for r in self.rows}
        return found


def markdown(title, spread, labels):
    lines = [title]
    for metric in SHOWN:
        better = "lower" if metric.startswith("FPR") else "higher"
        lines += ["", f"**{metric}** (%, {better} is better): mean ± std over the "
                      f"{len(spread.models)} networks", "",
                  "| detector | " + " | ".join(labels[s] for s in spread.sets) + " | mean |",
                  "|---|" + "---|" * (len(spread.sets) + 1)]
        for row in spread.rows:
            cells = [f"{m:.1f} ± {sd:.1f}" for m, sd in
                     (spread.across(s, row, metric) for s in spread.sets)]
            means = [spread.mean_over_sets(m, row, metric) for m in spread.models]
            cells.append(f"{np.mean(means):.1f} ± {np.std(means, ddof=1):.1f}")
            lines.append(f"| {row} | " + " | ".join(cells) + " |")
        ranks = spread.ranks(metric)
        lines += ["", f"Each detector's mean {metric} over the sets, and its rank among these "
                      "detectors, per network:", "",
                  "| detector | " + " | ".join(spread.models) + " |",
                  "|---|" + "---|" * len(spread.models)]
        for row in spread.rows:
            lines.append(f"| {row} | " + " | ".join(
                f"{spread.mean_over_sets(m, row, metric):.1f} (#{ranks[m][row]})"
                for m in spread.models) + " |")
    if spread.left_out:
        lines += ["", "Not averaged (not in every network's tables):"]
        lines += [f"- {line}" for line in spread.left_out]
    return "\n".join(lines) + "\n"


def write_csv(path, spread):
    with files.writing(path, newline="") as f:
        out = csv.writer(f)
        out.writerow(["ood_set", "detector", "metric", "mean", "std", "networks",
                      *spread.models])
        for s in spread.sets:
            for row in spread.rows:
                for metric in SHOWN:
                    mean, sd = spread.across(s, row, metric)
                    out.writerow([s, row, metric, f"{mean:.2f}", f"{sd:.2f}",
                                  len(spread.models),
                                  *(f"{spread.values[m, s, row][metric]:.2f}"
                                    for m in spread.models)])
    return path


def figure(path, spread, labels, title):
    """AUROC per set: each network's value as a point, the mean ± std as a bar, one panel per
    detector."""
    columns = min(4, len(spread.rows))
    panels = int(np.ceil(len(spread.rows) / columns))
    fig, axes = plt.subplots(panels, columns, figsize=(4 * columns, 3.2 * panels),
                             squeeze=False, sharey=True)
    x = np.arange(len(spread.sets))
    markers = "os^vD<>"
    for ax, row in zip(axes.flat, spread.rows):
        stats = [spread.across(s, row, "AUROC") for s in spread.sets]
        ax.errorbar(x, [m for m, _ in stats], yerr=[sd for _, sd in stats], fmt="_",
                    color="black", capsize=3, lw=1, ms=12, label="mean ± std")
        for k, m in enumerate(spread.models):
            ax.plot(x + 0.12 * (k - (len(spread.models) - 1) / 2),
                    [spread.values[m, s, row]["AUROC"] for s in spread.sets],
                    markers[k % len(markers)], ms=4, alpha=0.8, label=m)
        ax.set_title(row, fontsize=9)
        ax.set_xticks(x, [labels[s] for s in spread.sets], rotation=35, ha="right",
                      fontsize=7)
        ax.grid(axis="y", lw=0.4)
    return finish_panels(fig, axes, len(spread.rows), title, path, legend_size=6)
