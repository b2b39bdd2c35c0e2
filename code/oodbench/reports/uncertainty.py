"""Which numbers of a comparison table the images support (layer 5: reports).

``assess`` takes the scores behind a table's cells, {(column, row): (in scores, OOD
scores)} with a column per OOD set (every row of a column scored on the same images), and
gives:

- a 95% percentile bootstrap interval of AUROC and FPR95 per cell (scoring/intervals.py:
  B resamples of the images, the in-distribution and the OOD side drawn independently, the
  same resamples for every row of a column);
- per (column, metric) the rows not significantly worse than the column's best: each other
  row's difference from the best tested (AUROC: DeLong's test; FPR95: the paired bootstrap),
  Holm-adjusted over the column's rows, kept when p >= alpha;
- every pair of rows of a column with its paired-bootstrap interval of the difference, the
  bootstrap p-value, DeLong's p for AUROC, and the Holm-adjusted p of the test that decides
  (DeLong for AUROC, bootstrap for FPR95) over the column's pairs;
- the same for the mean over the columns (for the rows present in every column): each
  resample's values averaged over the columns, tested by the paired bootstrap.

The rest formats it: a compact cell ("6.3 ±0.5": the value and the larger distance to an end
of its interval), the caption that says what bold means, the lower/upper columns of a CSV,
and the pairs' table.
"""
import csv
import itertools
from dataclasses import dataclass, field

import numpy as np

from oodbench.core import files
from oodbench.scoring import intervals, paired_tests

METRICS = intervals.BOOTSTRAPPED          # ("AUROC", "FPR at TPR 95%")
ALPHA = 0.05
MEAN = "mean"


@dataclass(frozen=True)
class Pair:
    column: str
    metric: str
    first: str
    second: str
    difference: float     # first - second, on the images as they are
    lower: float          # the paired bootstrap's interval of the difference
    upper: float
    p_bootstrap: float
    p_delong: float | None
    p_holm: float         # of the deciding test, over the column's pairs

    @property
    def distinguishable(self):
        return self.p_holm < ALPHA


@dataclass
class Assessment:
    resamples: int
    seed: int
    intervals: dict = field(default_factory=dict)   # (column, row) -> {metric: Interval}
    best: dict = field(default_factory=dict)        # (column, metric) -> set of rows
    pairs: list = field(default_factory=list)
    constant: list = field(default_factory=list)    # (column, row) whose scores are all equal

    def is_best(self, column, row, metric):
        return row in self.best.get((column, metric), ())

    def pair(self, column, metric, a, b):
        """The Pair of rows a and b (in either order) of a column, or None."""
        for p in self.pairs:
            if (p.column, p.metric) == (column, metric) and {p.first, p.second} == {a, b}:
                return p
        return None


def _column_scores(scores, column, rows):
    present = [r for r in rows if (column, r) in scores]
    sizes = {(len(scores[column, r][0]), len(scores[column, r][1])) for r in present}
    if len(sizes) > 1:
        raise ValueError(f"{column}: rows scored on different numbers of images {sorted(sizes)}"
                         ": a paired comparison needs the same images")
    return present


def _replicates(scores, column, present, resamples, seed, constant):
    first = scores[column, present[0]]
    resampler = intervals.Resampler(len(first[0]), len(first[1]), resamples, seed,
                                    intervals.stream_of(column))
    values, replicates = {}, {}
    for row in present:
        ins, outs = intervals.check_scores(*scores[column, row], what=f"{row} on {column}")
        if np.ptp(np.r_[ins, outs]) == 0:
            constant.append((column, row))
        values[row] = intervals.point_values(ins, outs)
        replicates[row] = resampler.replicates(ins, outs)
    return values, replicates


def _delong_p(scores, column, present):
    """(a, b) -> DeLong's two-sided p of AUROC between rows a and b of the column."""
    components = {r: paired_tests.structural_components(*map(np.asarray, scores[column, r]))
                  for r in present}
    return lambda a, b: paired_tests.delong_of_components(components[a], components[b])[2]


def _judge(assessment, column, present, values, replicates, delong_p):
    """The column's intervals, best groups and pairs into ``assessment``."""
    for row in present:
        assessment.intervals[column, row] = {
            m: intervals.interval(values[row][m], replicates[row][m]) for m in METRICS}
    for metric in METRICS:
        def p_of(a, b, metric=metric):
            if metric == "AUROC" and delong_p is not None:
                return delong_p(a, b)
            return paired_tests.difference(metric, values, replicates, a, b).p
        _, group = paired_tests.best_group({r: values[r][metric] for r in present}, p_of,
                                           metric, ALPHA)
        assessment.best[column, metric] = group
        pairs = list(itertools.combinations(present, 2))
        found = [paired_tests.difference(metric, values, replicates, a, b) for a, b in pairs]
        deciding = [p_of(a, b) for a, b in pairs]
        adjusted = paired_tests.holm(deciding) if pairs else []
        by_delong = metric == "AUROC" and delong_p is not None
        for (a, b), d, p, p_adjusted in zip(pairs, found, deciding, adjusted):
            assessment.pairs.append(Pair(column, metric, a, b, d.value, d.lower, d.upper, d.p,
                                         p if by_delong else None, float(p_adjusted)))


def assess(scores, columns, rows, resamples=intervals.RESAMPLES, seed=intervals.SEED,
           mean=True):
    """The Assessment of a table's cells (module docstring); ``mean``: also the column
    MEAN over ``columns`` for the rows scored on every one of them."""
    intervals.check_resamples(resamples)
    assessment = Assessment(resamples, seed)
    per_column = {}
    for column in columns:
        present = _column_scores(scores, column, rows)
        if not present:
            continue
        values, replicates = _replicates(scores, column, present, resamples, seed,
                                         assessment.constant)
        per_column[column] = values, replicates
        _judge(assessment, column, present, values, replicates,
               _delong_p(scores, column, present))
    everywhere = [r for r in rows if per_column and all(r in v for v, _ in per_column.values())]
    if mean and everywhere:
        values = {r: {m: float(np.mean([v[r][m] for v, _ in per_column.values()]))
                      for m in METRICS} for r in everywhere}
        replicates = {r: {m: np.mean([x[r][m] for _, x in per_column.values()], axis=0)
                          for m in METRICS} for r in everywhere}
        _judge(assessment, MEAN, everywhere, values, replicates, None)
    return assessment


def cell(interval, bold=False, digits=1):
    """'6.3 ±0.5' in percent: the value and the larger distance from it to an end of its
    interval (the exact ends are in the CSV); bold when ``bold``."""
    spread = max(interval.value - interval.lower, interval.upper - interval.value)
    text = f"{100 * interval.value:.{digits}f} ±{100 * spread:.{digits}f}"
    return f"**{text}**" if bold else text


def column_digits(assessment, column, rows, metric):
    """1, or 2 where one decimal would show a detector the test tells apart from the best
    with the best's very value (99.97 against 100.00 on noise, both '100.0')."""
    present = [r for r in rows if (column, r) in assessment.intervals]
    shown = {r: f"{100 * assessment.intervals[column, r][metric].value:.1f}" for r in present}
    best_rows = {r for r in present if assessment.is_best(column, r, metric)}
    best_texts = {shown[r] for r in best_rows}
    return 2 if any(shown[r] in best_texts for r in present if r not in best_rows) else 1


def caption(metric, assessment, what="detector"):
    better = "lower" if metric.startswith("FPR") else "higher"
    test = ("DeLong's test" if metric == "AUROC" else "a paired bootstrap")
    return (f"**{metric}** (%, {better} is better; ± the 95% bootstrap interval over "
            f"{assessment.resamples:,} resamples of the images, its larger side, the ends in "
            f"the CSV; bold: the column's best and every {what} not significantly worse than it "
            f"by {test} against the best, Holm-corrected over the column, alpha = {ALPHA}; the "
            "mean column: a paired bootstrap of the mean over the sets)")


def interval_fields():
    return [f"{m} {end}" for m in METRICS for end in ("lower", "upper")]


def interval_cells(assessment, column, row):
    """The CSV's lower/upper cells (percent) of one (column, row), blank when not assessed."""
    found = assessment.intervals.get((column, row))
    if found is None:
        return [""] * 2 * len(METRICS)
    return [f"{100 * getattr(found[m], end):.2f}" for m in METRICS for end in ("lower", "upper")]


def pairs_summary(assessment, columns, labels):
    """Markdown lines: per column and metric, how many pairs of rows are distinguishable."""
    lines = ["**Distinguishable pairs** (Holm-corrected over each column's pairs, alpha = "
             f"{ALPHA}; AUROC by DeLong's test, FPR95 by a paired bootstrap; every pair in the "
             "_pairs.csv beside this table)", "",
             "| OOD set | " + " | ".join(f"{m}: distinguishable pairs" for m in METRICS) + " |",
             "|---|" + "---|" * len(METRICS)]
    for column in [*columns, MEAN]:
        counts = []
        for metric in METRICS:
            pairs = [p for p in assessment.pairs if (p.column, p.metric) == (column, metric)]
            counts.append(f"{sum(p.distinguishable for p in pairs)} of {len(pairs)}"
                          if pairs else "")
        if any(counts):
            lines.append(f"| {labels.get(column, column)} | " + " | ".join(counts) + " |")
    return lines


def constant_notes(assessment, labels):
    """Markdown lines naming the cells whose detector gave every image one score."""
    if not assessment.constant:
        return []
    return ["", "Constant scores (the detector tells nothing apart there: AUROC 50%, FPR95 "
            "100%, an interval of width 0): " + "; ".join(
                f"{row} on {labels.get(column, column)}" for column, row in assessment.constant)
            + "."]


def write_pairs_csv(path, assessment):
    with files.writing(path, newline="") as f:
        out = csv.writer(f)
        out.writerow(["ood_set", "metric", "first", "second", "difference", "lower", "upper",
                      "p_bootstrap", "p_delong", "p_holm", "distinguishable"])
        for p in assessment.pairs:
            out.writerow(pair_cells(p))
    return path


def pair_cells(p):
    """A Pair as CSV cells (differences in percent)."""
    return [p.column, p.metric, p.first, p.second, f"{100 * p.difference:.2f}",
            f"{100 * p.lower:.2f}", f"{100 * p.upper:.2f}", f"{p.p_bootstrap:.4g}",
            "" if p.p_delong is None else f"{p.p_delong:.4g}", f"{p.p_holm:.4g}",
            int(p.distinguishable)]


def constant_note(name, in_scores, out_scores):
    """A note when a detector gives every image one score (AUROC 0.5, FPR95 100%, and an
    interval of width 0: nothing to resample), else ''."""
    if np.ptp(np.r_[in_scores, out_scores]) == 0:
        return (f"{name}: every image has the same score, so the detector tells nothing "
                "apart (AUROC 50%, FPR95 100%, intervals of width 0)")
    return ""


def interval_lines(scores, resamples=intervals.RESAMPLES, seed=intervals.SEED):
    """calMetric.py --ci: each method's AUROC and FPR95 with its 95% interval, and for two
    methods of the same images (Baseline and ODIN) their paired difference, second minus
    first. ``scores``: {method name: (in scores, OOD scores)}."""
    found = assess({("run", name): pair for name, pair in scores.items()}, ["run"],
                   list(scores), resamples, seed, mean=False)
    lines = [f"95% bootstrap intervals ({resamples:,} resamples of the images, seed {seed}):"]
    for name in scores:
        cells = []
        for metric in METRICS:
            i = found.intervals["run", name][metric]
            cells.append(f"{metric} {100 * i.value:.1f}% [{100 * i.lower:.1f}, "
                         f"{100 * i.upper:.1f}]")
        lines.append(f"  {name:18}" + "   ".join(cells))
    for p in found.pairs:
        sign = -1 if list(scores).index(p.first) < list(scores).index(p.second) else 1
        low, high = sorted((sign * p.lower, sign * p.upper))
        later, earlier = (p.second, p.first) if sign < 0 else (p.first, p.second)
        delong = "" if p.p_delong is None else f", DeLong p = {p.p_delong:.3g}"
        lines.append(f"  {later} - {earlier}, {p.metric}: {100 * sign * p.difference:+.1f} "
                     f"[{100 * low:+.1f}, {100 * high:+.1f}], paired bootstrap p = "
                     f"{p.p_bootstrap:.3g}{delong}")
    lines += [note for name, pair in scores.items() if (note := constant_note(name, *pair))]
    return lines
