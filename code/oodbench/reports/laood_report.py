"""LA-OOD's report (layer 5): results/laood_<nn>.md and .csv (with the per-layer AUROC in
laood_<nn>_layers.csv) and two figures, from laood_runs' per-layer scores.

Both conventions: ours (in-distribution positive, score higher = in, as every table here) and
the paper's (OOD positive: its "FPR at 95% TPR" is the fraction of in-distribution images
flagged when 95% of the OOD images are caught), computed by the same metric code with the
roles swapped.
"""
import csv
import re

import matplotlib.pyplot as plt
import numpy as np

from oodbench.core import files
from oodbench.core.paths import figures_dir, results_dir
from oodbench.core.shards import by_leader
from oodbench.datasets.image_sets import get_ood_set
from oodbench.networks.registry import get_spec
from oodbench.detectors.laood import GAMMA_GRIDS
from oodbench.pipelines.runs import HELD_OUT, range_suffix
from oodbench.pipelines.tuning import DEFAULT_TUNE_IMAGES
from oodbench.reports import uncertainty
from oodbench.reports.figures import save
from oodbench.scoring.intervals import RESAMPLES, SEED
from oodbench.scoring.metrics import exact_metrics

FPR = "FPR at TPR 95%"
LABEL = "LA-OOD"


def both_conventions(ins, outs):
    """(metrics with in-distribution positive, metrics with OOD positive) of scores where
    higher = more in-distribution."""
    return exact_metrics(ins, outs), exact_metrics(-outs, -ins)


def layer_aurocs(scores):
    """AUROC of each layer alone (its SVM's -s_l, higher = in)."""
    return np.array([exact_metrics(-scores.ins[:, i], -scores.outs[:, i])["AUROC"]
                     for i in range(scores.ins.shape[1])])


def summarise(detector, results, resamples=RESAMPLES, seed=SEED):
    """{set: row of the table} and {set: per-layer AUROC}; each row's "intervals" are the 95%
    bootstrap intervals of its AUROC and FPR95 (in-distribution positive)."""
    names = list(detector.fits)
    rows, aurocs = {}, {}
    assessment = uncertainty.assess({(name, LABEL): scores.laood()[:2]
                                     for name, scores in results.items()},
                                    list(results), [LABEL], resamples, seed, mean=False)
    for name, scores in results.items():
        ins, outs, _, out_layer = scores.laood()
        ours, paper = both_conventions(ins, outs)
        per_layer = layer_aurocs(scores)
        best = int(per_layer.argmax())
        decided = np.bincount(out_layer, minlength=len(names))
        rows[name] = {"ours": ours, "paper": paper, "best_layer": names[best],
                      "best_auroc": per_layer[best],
                      "logits_auroc": per_layer[names.index("logits")] if "logits" in names
                      else float("nan"),
                      "mode_layer": names[int(decided.argmax())],
                      "mode_share": decided.max() / len(outs),
                      "intervals": assessment.intervals[name, LABEL]}
        aurocs[name] = per_layer
    return rows, aurocs


def markdown(nn, spec, detector, rows, why_not, timings, max_images=None):
    lines = [f"LA-OOD on {nn} ({spec.label}, {spec.in_dataset}): One-Class SVMs on "
             f"{len(detector.fits)} layers fitted on {int(detector.params['subsample'])} "
             f"class-balanced training images, gamma from the {detector.params['gamma_grid']} "
             f"grid ({', '.join(map(str, GAMMA_GRIDS[detector.params['gamma_grid']]))}). "
             f"%; images from index {HELD_OUT} of each set"
             + (f", at most {max_images} a side" if max_images else "") + ". FPR95 (in "
             "positive) and AUROC with ± the 95% bootstrap interval over the images, its "
             "larger side (the ends in the CSV).", "",
             "| OOD set | FPR95 (in positive) | FPR95 (OOD positive, the paper's) | AUROC | "
             "AUPR In | AUPR Out | best single layer (AUROC) | logits alone (AUROC) | "
             "layer deciding most OOD images |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, row in rows.items():
        ours, paper = row["ours"], row["paper"]
        found = row["intervals"]
        lines.append(
            f"| {get_ood_set(name).label} | {uncertainty.cell(found[FPR])} | "
            f"{100 * paper[FPR]:.1f} | {uncertainty.cell(found['AUROC'])} | "
            f"{100 * ours['AUPR In']:.1f} | "
            f"{100 * ours['AUPR Out']:.1f} | {row['best_layer']} ({100 * row['best_auroc']:.1f})"
            f" | {100 * row['logits_auroc']:.1f} | {row['mode_layer']} "
            f"({100 * row['mode_share']:.0f}%) |")
    if detector.unfit:
        lines += ["", "Layers left out of the maximum: " + "; ".join(
            f"{n}: {r}" for n, r in detector.unfit.items())]
    if why_not:
        lines += ["", "Not run here:"] + [f"- {get_ood_set(s).label}: {r}"
                                          for s, r in why_not.items()]
    lines += beside(nn, rows, max_images)
    lines += ["", "Wall time: " + "; ".join(f"{k} {v:.0f} s" for k, v in timings.items()) + "."]
    return "\n".join(lines) + "\n"


def comparison_name(nn, max_images=None):
    """The comparison table (compare.py) over the same images as LA-OOD's (from index HELD_OUT,
    at most ``max_images`` a side) with every detector: the one whose ODIN was tuned on the
    most held-out images (detectors_<nn>[_tune<N>][_n<N>])."""
    end = range_suffix(HELD_OUT, max_images)
    pattern = re.compile(rf"detectors_{re.escape(nn)}(_tune(\d+))?{re.escape(end)}")
    found = [(int(m.group(2) or DEFAULT_TUNE_IMAGES), m.group(0)) for m in (
        pattern.fullmatch(p.stem) for p in results_dir().glob(f"detectors_{nn}*{end}.csv")) if m]
    return max(found)[1] if found else f"detectors_{nn}{end}"


def comparison(nn, max_images=None):
    """{(set, detector): {metric: %}} of the model's comparison table over the same images
    (results/<comparison_name>.csv), or {} if it has none."""
    path = results_dir() / f"{comparison_name(nn, max_images)}.csv"
    if not path.is_file():
        return {}
    with open(path, newline="") as f:
        return {(r["ood_set"], r["detector"]): r for r in csv.DictReader(f) if r["detector"]}


def beside(nn, rows, max_images=None):
    """Markdown: LA-OOD's AUROC and FPR95 (in positive) beside every detector of the
    comparison table over the same images, on the sets both have."""
    name = comparison_name(nn, max_images)
    others = comparison(nn, max_images)
    sets = [s for s in rows if any(k[0] == s for k in others)]
    if not sets:
        more = f" --max-images {max_images}" if max_images else ""
        return [f"(No comparison table results/{name}.csv to set LA-OOD beside: "
                f"python code/compare.py {get_spec(nn).command or '--nn ' + nn}{more}.)"]
    detectors = list(dict.fromkeys(d for s, d in others if s in sets))
    lines = []
    for metric in ("AUROC", FPR):
        lines += ["", f"**{metric}** beside the comparison table's detectors "
                  f"(results/{name}.md; the same images)", "",
                  "| detector | " + " | ".join(get_ood_set(s).label for s in sets) + " |",
                  "|---|" + "---|" * len(sets)]
        for d in detectors:
            lines.append(f"| {d} | " + " | ".join(
                f"{float(others[s, d][metric]):.1f}" if (s, d) in others else ""
                for s in sets) + " |")
        lines.append("| **LA-OOD** | " + " | ".join(
            f"**{100 * rows[s]['ours'][metric]:.1f}**" for s in sets) + " |")
    return lines


def table_name(nn, max_images=None, variant=""):
    """laood_<nn><variant>[_n<N>]: a run on fewer images, sets or training images (``variant``,
    laood_table.py's) never replaces the whole table."""
    return f"laood_{nn}{variant}{range_suffix(HELD_OUT, max_images)}"


@by_leader
def write_tables(nn, spec, detector, rows, aurocs, why_not, timings, max_images=None,
                 variant=""):
    """results/<table_name>.md, .csv and _layers.csv; returns the markdown."""
    folder = results_dir()
    folder.mkdir(parents=True, exist_ok=True)
    text = markdown(nn, spec, detector, rows, why_not, timings, max_images)
    stem = table_name(nn, max_images, variant)
    files.write_text(folder / f"{stem}.md", text)
    with files.writing(folder / f"{stem}.csv", newline="") as f:
        out = csv.writer(f)
        out.writerow(["ood_set", "convention", *rows[next(iter(rows))]["ours"],
                      *uncertainty.interval_fields(), "best_layer", "best_layer_auroc",
                      "logits_auroc"])
        for name, row in rows.items():
            for convention in ("ours", "paper"):
                bounds = ([f"{100 * getattr(row['intervals'][m], end):.2f}"
                           for m in uncertainty.METRICS for end in ("lower", "upper")]
                          if convention == "ours" else [""] * 2 * len(uncertainty.METRICS))
                out.writerow([name, convention,
                              *(f"{100 * v:.2f}" for v in row[convention].values()), *bounds,
                              row["best_layer"], f"{100 * row['best_auroc']:.2f}",
                              f"{100 * row['logits_auroc']:.2f}"])
    with files.writing(folder / f"{stem}_layers.csv", newline="") as f:
        out = csv.writer(f)
        out.writerow(["layer", "gamma", "edge_points", *aurocs])
        for i, (layer, fit) in enumerate(detector.fits.items()):
            out.writerow([layer, fit.gamma, fit.edge_points,
                          *(f"{100 * aurocs[s][i]:.2f}" for s in aurocs)])
    return text


@by_leader
def draw(nn, spec, detector, results, aurocs, max_images=None, variant=""):
    """figures/<table_name>_layers.png (per-layer AUROC of each set) and
    figures/<table_name>_deciding.png (which layer decided, per set); returns both paths."""
    stem = table_name(nn, max_images, variant)
    names = list(detector.fits)
    title = f"LA-OOD, {nn} ({spec.label}, {spec.in_dataset})"
    folder = figures_dir()
    folder.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(11, 4.5))
    for name, values in aurocs.items():
        ax.plot(np.arange(1, len(values) + 1), 100 * values, label=get_ood_set(name).label, lw=1.2)
    ax.set_xlabel(f"layer (1 = first convolution, {len(names)} = {names[-1]})")
    ax.set_ylabel("AUROC of the layer's One-Class SVM alone (%)")
    ax.set_title(title + ": each layer alone")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    layers_path = folder / f"{stem}_layers.png"
    save(fig, layers_path)
    columns = min(3, len(results))
    rows = -(-len(results) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 2.6 * rows), squeeze=False)
    for ax, (name, scores) in zip(axes.flat, results.items()):
        _, _, in_layer, out_layer = scores.laood()
        edges = np.arange(len(names) + 1) + 0.5
        ax.hist(in_layer + 1, bins=edges, alpha=0.5, color="grey", label="CIFAR test")
        ax.hist(out_layer + 1, bins=edges, alpha=0.7, label="OOD")
        ax.set_title(get_ood_set(name).label, fontsize=9)
        ax.set_xlabel("deciding layer", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(results):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(title + ": the layer whose SVM gave the maximum", fontsize=10)
    fig.tight_layout()
    deciding_path = folder / f"{stem}_deciding.png"
    save(fig, deciding_path)
    return layers_path, deciding_path
