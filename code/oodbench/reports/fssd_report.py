"""The FSSD benchmark's tables (layer 5): mean ± std over repetitions of each method's AUROC,
AUPRC and FPR at 80% TPR per OOD set, the FSSD README's numbers beside ours for MNIST, as
Markdown and CSV; beneath AUROC and FPR80, the 95% bootstrap interval of the mean over the
repetitions from resampling the test images (scoring/intervals.py: each resample's values
averaged over the repetitions, the networks fixed), and each record's own interval in the
CSV."""
import csv
import io

import numpy as np

from oodbench.pipelines.fssd_protocol import METHODS
from oodbench.scoring import intervals
from oodbench.scoring.metrics import FSSD_METRICS

LEVEL = 0.8                                     # FPR at 80% TPR, the FSSD repository's
INTERVAL_METRICS = ("AUROC", intervals.fpr_name(LEVEL))

# megvii-research/FSSD_OoD_Detection README, FashionMNIST vs. MNIST (LeNet), in %.
README_METHODS = ("Baseline", "ODIN", "Mahalanobis", "DE", "MCD", "OE", "FSSD")
README_MNIST = {
    "AUROC": dict(zip(README_METHODS, (77.3, 87.9, 99.6, 83.9, 76.5, 99.6, 99.6))),
    "AUPRC": dict(zip(README_METHODS, (79.2, 88.0, 99.7, 83.3, 79.3, 99.6, 99.7))),
    "FPR at TPR 80%": dict(zip(README_METHODS, (42.5, 20.0, 0.0, 27.5, 42.3, 0.0, 0.0))),
}
COLUMN = {"Baseline": "Base", "Mahalanobis": "Maha", "Mahalanobis (TIN val)": "Maha (TIN val)"}


def summary(records, out_set, method, metric):
    """(mean, std, count) in % over the repetitions' records of one cell."""
    values = [100 * r[metric] for r in records if r["set"] == out_set and r["method"] == method]
    if not values:
        return None
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0, \
        len(values)


def cell(stats):
    if stats is None:
        return "—"
    return f"{stats[0]:.1f}" if stats[2] == 1 else f"{stats[0]:.1f} ± {stats[1]:.1f}"


def record_intervals(records, resamples=intervals.RESAMPLES, seed=intervals.SEED):
    """{id(record): {metric: (value, [resamples] values)}} of AUROC and FPR80 of every record
    with its test scores; every record of a set gets the same resampled images."""
    found, resamplers = {}, {}
    for r in records:
        if "scores" not in r:
            continue
        ins, outs = intervals.check_scores(*r["scores"], what=f"{r['method']} on {r['set']}")
        key = (r["set"], len(ins), len(outs))
        if key not in resamplers:
            resamplers[key] = intervals.Resampler(len(ins), len(outs), resamples, seed,
                                                  intervals.stream_of(r["set"]))
        points = intervals.point_values(ins, outs, LEVEL)
        replicates = resamplers[key].replicates(ins, outs, level=LEVEL)
        found[id(r)] = {m: (points[m], replicates[m]) for m in INTERVAL_METRICS}
    return found


def mean_interval(records, resampled, out_set, method, metric):
    """The Interval of the mean over the repetitions of one cell, or None without scores."""
    found = [resampled[id(r)][metric] for r in records
             if r["set"] == out_set and r["method"] == method and id(r) in resampled]
    if not found:
        return None
    return intervals.interval(np.mean([v for v, _ in found]),
                              np.mean([x for _, x in found], axis=0))


def table(records, out_set, with_readme, resampled=None):
    methods = [m for m in METHODS if any(r["method"] == m for r in records)]
    head = "| | " + " | ".join(COLUMN.get(m, m) for m in methods) + " |"
    lines = [head, "|" + "---|" * (len(methods) + 1)]
    for metric in FSSD_METRICS:
        short = "FPR80" if metric.startswith("FPR") else metric
        ours = [cell(summary(records, out_set, m, metric)) for m in methods]
        lines.append(f"| {short} (ours) | " + " | ".join(ours) + " |")
        if resampled and metric in INTERVAL_METRICS:
            found = [mean_interval(records, resampled, out_set, m, metric) for m in methods]
            lines.append(f"| {short}, 95% interval over the images | " + " | ".join(
                "" if i is None else f"[{100 * i.lower:.1f}, {100 * i.upper:.1f}]"
                for i in found) + " |")
        if with_readme:
            theirs = [f"{README_MNIST[metric][m]:.1f}" if m in README_MNIST[metric] else ""
                      for m in methods]
            lines.append(f"| {short} (FSSD README) | " + " | ".join(theirs) + " |")
    return "\n".join(lines)


def shown_value(value):
    """ODIN's (T, eps) as 'T=1000 eps=0.001'; a magnitude as it is."""
    if isinstance(value, (list, tuple)):
        return f"T={value[0]} eps={value[1]}"
    return f"{value}"


def chosen_values(records, out_set):
    """'method: value per repetition' for the tuned methods."""
    parts = []
    for method in METHODS:
        picked = [(r["rep"], r["chosen"]) for r in records
                  if r["set"] == out_set and r["method"] == method and r["chosen"] is not None]
        if picked:
            values = ", ".join(shown_value(v) for _, v in sorted(picked, key=lambda p: p[0]))
            parts.append(f"{method} {values}")
    return "; ".join(parts)


def markdown(records, sets, descriptions, test_images=9000, shortened="", resampled=None,
             resamples=intervals.RESAMPLES):
    """The tables of ``records``; the header states the test images a side and, for a run
    shorter than the whole protocol, what it left out (``shortened``). ``resampled``:
    record_intervals(records), for the interval rows."""
    reps = sorted({r["rep"] for r in records})
    out = [f"Fashion-MNIST (in) vs each set, LeNet; mean ± std (%) over {len(reps)} "
           f"repetition(s) ({', '.join(map(str, reps))}), each a network, a Deep Ensemble and "
           f"an OE fine-tune trained here; FSSD's protocol ({test_images:,} + {test_images:,} "
           "test images)." + (f" A shortened run: {shortened}." if shortened else "")
           + (f" The interval rows: the 95% bootstrap interval of that mean over {resamples:,} "
              "resamples of the test images (the networks fixed; the spread between "
              "repetitions is the ± of the row above)." if resampled else "")]
    for out_set in sets:
        if not any(r["set"] == out_set for r in records):
            continue
        out += ["", f"### {out_set}: {descriptions.get(out_set, '')}", "",
                table(records, out_set, out_set == "MNIST", resampled), "",
                f"Chosen (per repetition): {chosen_values(records, out_set)}."]
    return "\n".join(out) + "\n"


def csv_text(records, resampled=None):
    """One line per record; with ``resampled``, each record's own 95% interval of AUROC and
    FPR80 (fractions, as the metrics)."""
    buffer = io.StringIO()
    bounds = [f"{m} {end}" for m in INTERVAL_METRICS for end in ("lower", "upper")]
    fields = ["rep", "set", "method", *FSSD_METRICS, *bounds, "chosen", "seconds"]
    writer = csv.DictWriter(buffer, fieldnames=fields, extrasaction="ignore",
                            lineterminator="\n")
    writer.writeheader()
    for r in sorted(records, key=lambda r: (r["set"], METHODS.index(r["method"]), r["rep"])):
        found = {}
        if resampled and id(r) in resampled:
            for m in INTERVAL_METRICS:
                i = intervals.interval(*resampled[id(r)][m])
                found |= {f"{m} lower": f"{i.lower:.6f}", f"{m} upper": f"{i.upper:.6f}"}
        writer.writerow({**r, **{m: f"{r[m]:.6f}" for m in FSSD_METRICS}, **found})
    return buffer.getvalue()
