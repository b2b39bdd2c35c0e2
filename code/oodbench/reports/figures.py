"""Figures (layer 5: reports): ROC curves (baseline vs ODIN, or any method's) and in/out
score histograms of run folders, the heat map of a tuning grid, and the detectors x OOD sets
heat maps of a comparison. The command for run folders is code/figures.py.
"""
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import roc_curve

from oodbench.core import files, scorefiles
from oodbench.core.paths import UserError, figures_dir
from oodbench.core.shards import by_leader
from oodbench.scoring.metrics import exact_metrics

plt.switch_backend("Agg")   # files only, never a window
LABELS = {"Base": "Baseline (T = 1, no perturbation)", "Our": "ODIN"}


def save(fig, path):
    """``fig`` as the PNG ``path``, written whole or not at all, and closed."""
    with files.replacing(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)


def load_scores(folder):
    """{method tag: (in, out)} from a run folder: Base and Our for an ODIN run."""
    scorefiles.check(folder)
    tags = scorefiles.methods_in(folder)
    if not tags:
        raise UserError(f"{folder}: no pair of confidence_<Method>_{{In,Out}}.txt files")
    return {m: scorefiles.read_scores(folder, m)[1:] for m in tags}


def title_of(folder):
    info = scorefiles.read_run_info(folder)
    if not info:
        return Path(folder).name
    head = f"{info['nn']} ({info['in_dataset']}) vs {info['out_label']}"
    if info.get("method", "odin") == "odin":
        return f"{head}: T = {info['temperature']}, ε = {info['epsilon']}"
    params = ", ".join(f"{name} = {value}" for name, value in info.get("params", {}).items()
                       if value is not None)
    return f"{head}: {info.get('label', info['method'])}" + (f" ({params})" if params else "")


def roc_figure(folder, path):
    scores = load_scores(folder)
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for method, (ins, outs) in scores.items():
        label = LABELS.get(method, method)
        fpr, tpr, _ = roc_curve(np.r_[np.ones(len(ins)), np.zeros(len(outs))], np.r_[ins, outs])
        auroc = exact_metrics(ins, outs)["AUROC"]
        ax.plot(fpr, tpr, label=f"{label}, AUROC {100 * auroc:.1f}%")
    ax.axhline(0.95, color="grey", lw=0.8, ls="--", label="TPR 95%")
    ax.set(xlabel="false positive rate (OOD images accepted)",
           ylabel="true positive rate (in-distribution images accepted)",
           xlim=(0, 1), ylim=(0, 1.01), title=title_of(folder))
    ax.title.set_fontsize(9)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    save(fig, path)


def histogram_figure(folder, path):
    scores = load_scores(folder)
    info = scorefiles.read_run_info(folder)
    fig, axes = plt.subplots(1, len(scores), figsize=(5 * len(scores), 4), squeeze=False)
    for ax, (method, (ins, outs)) in zip(axes[0], scores.items()):
        label = LABELS.get(method, method)
        bins = np.linspace(min(ins.min(), outs.min()), max(ins.max(), outs.max()), 60)
        ax.hist(ins, bins, alpha=0.6, density=True, label=info.get("in_dataset", "in-distribution"))
        ax.hist(outs, bins, alpha=0.6, density=True, label=info.get("out_label", "OOD"))
        ax.set(xlabel="max softmax score" if method in LABELS else "score (higher: more "
               "in-distribution)", ylabel="density", title=label)
        ax.legend(fontsize=8)
    fig.suptitle(title_of(folder), fontsize=10)
    fig.tight_layout()
    save(fig, path)


def tuning_heatmap(fpr, temperatures, epsilons, chosen, title, path):
    """Held-out FPR95 over the (T, eps) grid, the chosen cell marked."""
    fig, ax = plt.subplots(figsize=(10, 4.5))
    image = ax.imshow(100 * np.asarray(fpr), aspect="auto", cmap="viridis_r", origin="lower")
    ax.set_xticks(range(len(epsilons)), [f"{e:g}" for e in epsilons], rotation=60, fontsize=7)
    ax.set_yticks(range(len(temperatures)), [str(t) for t in temperatures])
    ax.plot(chosen[1], chosen[0], marker="*", color="red", markersize=14,
            label=f"chosen: T = {temperatures[chosen[0]]}, ε = {epsilons[chosen[1]]:g}")
    ax.set(xlabel="perturbation magnitude ε", ylabel="temperature T", title=title)
    ax.title.set_fontsize(9)
    fig.colorbar(image, ax=ax, label="FPR at 95% TPR (%)")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    save(fig, path)


@by_leader
def draw_tuning(record, name):
    """The heat map of a tuning record (tuning.Tuner.tune): figures/<model>/tuning_<name>.png."""
    temperatures, epsilons = record["temperatures"], record["epsilons"]
    chosen = (temperatures.index(record["temperature"]), epsilons.index(record["epsilon"]))
    count = record["images_per_side"]
    path = figure_path(record["nn"], f"tuning_{name}")
    tuning_heatmap(record["fpr95"], temperatures, epsilons, chosen,
                   f"{record['nn']}: held-out FPR at 95% TPR, tuned on {record['tuned_on']} "
                   f"({count} + {count} images)", path)
    return path


@by_leader
def draw_detector_heatmaps(metrics, rows, sets, title, path):
    """AUROC and FPR at 95% TPR of every detector (rows) on every OOD set (columns), side by
    side, each cell annotated; ``metrics``: {(set, row): {metric: value}}, ``sets``:
    [(set, label)]. Returns ``path``."""
    panels = (("AUROC", "AUROC (%), higher is better", "viridis"),
              ("FPR at TPR 95%", "FPR at 95% TPR (%), lower is better", "viridis_r"))
    fig, axes = plt.subplots(1, 2, figsize=(4 + 2.2 * len(sets), 1.2 + 0.45 * len(rows)))
    for ax, (metric, name, cmap) in zip(axes, panels):
        grid = np.array([[100 * metrics[s, r][metric] if (s, r) in metrics else np.nan
                          for s, _ in sets] for r in rows])
        image = ax.imshow(grid, aspect="auto", cmap=cmap)
        for (i, j), value in np.ndenumerate(grid):
            if np.isfinite(value):
                ax.text(j, i, f"{value:.1f}", ha="center", va="center", fontsize=7,
                        color="white" if (value < np.nanmean(grid)) == (cmap == "viridis")
                        else "black")
        ax.set_xticks(range(len(sets)), [label for _, label in sets], rotation=35, ha="right",
                      fontsize=7)
        ax.set_yticks(range(len(rows)), rows, fontsize=8)
        ax.set_title(name, fontsize=9)
        fig.colorbar(image, ax=ax, fraction=0.04)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    save(fig, path)
    return path


@by_leader
def draw_forest(assessment, rows, sets, title, path, mean="mean"):
    """A forest plot of a comparison: per detector (a band of rows) each set's AUROC and
    FPR95 with its 95% interval, the mean over the sets in black; a filled marker where the
    detector is in its column's best group (reports/uncertainty.py), hollow where it is
    significantly worse. ``sets``: [(set, label)]. Returns ``path``."""
    columns = [*sets, (mean, "mean over the sets")]
    colours = {s: plt.cm.tab20(i % 20) for i, (s, _) in enumerate(sets)}
    colours[mean] = "black"
    step = 0.8 / len(columns)
    fig, axes = plt.subplots(1, 2, figsize=(12, 1.9 + 0.55 * len(rows)), sharey=True)
    panels = (("AUROC", "AUROC (%), higher is better"),
              ("FPR at TPR 95%", "FPR at 95% TPR (%), lower is better"))
    for ax, (metric, name) in zip(axes, panels):
        for i, row in enumerate(rows):
            for j, (column, label) in enumerate(columns):
                found = assessment.intervals.get((column, row))
                if found is None:
                    continue
                value = found[metric]
                y = i - 0.4 + (j + 0.5) * step
                filled = assessment.is_best(column, row, metric)
                ax.errorbar(100 * value.value, y, xerr=[[100 * (value.value - value.lower)],
                                                        [100 * (value.upper - value.value)]],
                            fmt="D" if column == mean else "o", ms=4, lw=1, capsize=1.5,
                            color=colours[column], mfc=colours[column] if filled else "white",
                            label=label if i == 0 else None)
        ax.set_yticks(range(len(rows)), rows, fontsize=8)
        ax.set_ylim(len(rows) - 0.5, -0.5)
        for i in range(len(rows) - 1):
            ax.axhline(i + 0.5, color="0.85", lw=0.5)
        ax.set_title(name, fontsize=9)
        ax.grid(axis="x", lw=0.4)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(columns), 5), fontsize=7,
               title="filled: not significantly worse than the column's best; hollow: worse",
               title_fontsize=7, frameon=False)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.9 / (1.9 + 0.55 * len(rows)), 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    save(fig, path)
    return path


def finish_panels(fig, axes, used, title, path, legend_size=7):
    """A grid of AUROC panels: the unused ones blanked, the first labelled and with the
    legend, the title; saved to ``path``, which is returned."""
    for ax in axes.flat[used:]:
        ax.axis("off")
    axes[0, 0].set_ylabel("AUROC (%)")
    axes[0, 0].legend(fontsize=legend_size)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    save(fig, path)
    return path


def figure_path(nn, name):
    """figures/<model>/<name>.png, its folder created."""
    folder = figures_dir() / nn
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{name}.png"


@by_leader
def draw_runs(folders, quiet=False):
    """ROC and histogram figures of each run folder; returns their paths."""
    written = []
    for folder in folders:
        info = scorefiles.read_run_info(folder)
        for kind, draw in (("roc", roc_figure), ("hist", histogram_figure)):
            path = figure_path(info.get("nn", "runs"), f"{Path(folder).resolve().name}_{kind}")
            draw(folder, path)
            written.append(path)
            if not quiet:
                print(f"wrote {path}")
    return written
