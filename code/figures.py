"""Figures: ROC curves (baseline vs ODIN) and in/out score histograms of run folders,
and the heat map of a tuning grid.

    python figures.py ../runs/densenet10_iSUN_T1000_eps0.0014 [more run folders]

writes figures/<model>/<run>_roc.png and figures/<model>/<run>_hist.png.
"""
import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import roc_curve  # noqa: E402

import calMetric  # noqa: E402
from paths import ROOT, report_errors  # noqa: E402

FIGURES_DIR = ROOT / "figures"
METHODS = (("Base", "Baseline (T = 1, no perturbation)"), ("Our", "ODIN"))


def load_scores(folder):
    """{'Base': (in, out), 'Our': (in, out)} from a run folder."""
    scores = calMetric.find_score_dir(folder)
    return {m: tuple(calMetric.read_score_file(scores / f"confidence_{m}_{side}.txt")[2]
                     for side in ("In", "Out")) for m, _ in METHODS}


def title_of(folder):
    info = calMetric.read_run_info(folder)
    if not info:
        return Path(folder).name
    return (f"{info['nn']} ({info['in_dataset']}) vs {info['out_label']}: "
            f"T = {info['temperature']}, ε = {info['epsilon']}")


def roc_figure(folder, path):
    scores = load_scores(folder)
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for method, label in METHODS:
        ins, outs = scores[method]
        fpr, tpr, _ = roc_curve(np.r_[np.ones(len(ins)), np.zeros(len(outs))], np.r_[ins, outs])
        auroc = calMetric.exact_metrics(ins, outs)["AUROC"]
        ax.plot(fpr, tpr, label=f"{label}, AUROC {100 * auroc:.1f}%")
    ax.axhline(0.95, color="grey", lw=0.8, ls="--", label="TPR 95%")
    ax.set(xlabel="false positive rate (OOD images accepted)",
           ylabel="true positive rate (in-distribution images accepted)",
           xlim=(0, 1), ylim=(0, 1.01), title=title_of(folder))
    ax.title.set_fontsize(9)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def histogram_figure(folder, path):
    scores = load_scores(folder)
    info = calMetric.read_run_info(folder)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, (method, label) in zip(axes, METHODS):
        ins, outs = scores[method]
        bins = np.linspace(min(ins.min(), outs.min()), max(ins.max(), outs.max()), 60)
        ax.hist(ins, bins, alpha=0.6, density=True, label=info.get("in_dataset", "in-distribution"))
        ax.hist(outs, bins, alpha=0.6, density=True, label=info.get("out_label", "OOD"))
        ax.set(xlabel="max softmax score", ylabel="density", title=label)
        ax.legend(fontsize=8)
    fig.suptitle(title_of(folder), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


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
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", type=Path, help="run folders")
    args = parser.parse_args(argv)
    return report_errors(lambda: draw_runs(args.folders))


def figure_path(nn, name):
    """figures/<model>/<name>.png, its folder created."""
    folder = FIGURES_DIR / nn
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{name}.png"


def draw_runs(folders, quiet=False):
    """ROC and histogram figures of each run folder; returns their paths."""
    written = []
    for folder in folders:
        info = calMetric.read_run_info(folder) or {}
        for kind, draw in (("roc", roc_figure), ("hist", histogram_figure)):
            path = figure_path(info.get("nn", "runs"), f"{Path(folder).resolve().name}_{kind}")
            draw(folder, path)
            written.append(path)
            if not quiet:
                print(f"wrote {path}")
    return written


if __name__ == "__main__":
    sys.exit(main())

