"""Every detector against every OOD set for one model (layer 6: the compare.py command).

Every detector against every OOD set here, for one model, on exactly the same images,
model and metric code: results/detectors_<model>.md and .csv, figures/detectors_<model>.png
(detectors_<model>[_skip<S>][_n<N>] for another --skip or --max-images: a smaller comparison
never replaces the whole one).

Rows: the baseline (MSP) and ODIN, from the same ODIN runs as the model's results table
(table.py: its (T, eps), its run folders, reused when finished), then every gradient-free
detector (code/detectors/), each scored from the shared feature pass: the features of the
training set, the test set and each OOD set are computed once per model and cached
(runs/.cache), and each (detector, set) is an ordinary run folder under runs/ that
calMetric.py reads. Resumable: finished runs are reused, --force scores them again.
Images: the test set and each OOD set from index --skip (1,000) to N - 1, as every run.

--layerwise adds Mahalanobis in full and FSSD (input processing on the model's declared
layers, the layers combined by logistic regression), each validated two ways: on the
held-out first 1,000 images of the tested set (as their papers) and on Tiny-ImageNet
validation instead (no data of the tested kind); pipelines/layerwise_runs.py. They need an input
gradient per layer: about 30 ms per image at one magnitude on a 2-core CPU, 7 ms more per
further magnitude of the grid (scripts/bench_layerwise.py), so hours for a whole table there.

    python compare.py --nn densenet10
    python compare.py --nn resnet20 --methods energy,knn --max-images 200
    python compare.py --nn densenet10 --layerwise --gpu 0
"""
import argparse
import csv
import functools
import time
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from oodbench import detectors
from oodbench.commands import cli, table
from oodbench.core import files, runtime
from oodbench.core.paths import UserError, figures_dir, report_errors, results_dir, shown
from oodbench.core.scorefiles import read_run_info
from oodbench.core.shards import by_leader
from oodbench.datasets.image_sets import get_ood_set, test_set
from oodbench.networks.registry import get_spec, weights_sha256
from oodbench.pipelines import feature_runs, layerwise_runs, runs, tuning
from oodbench.reports import figures, metric_block, uncertainty
from oodbench.scoring.metrics import METRICS

BASELINE, ODIN = "MSP (baseline)", "ODIN"
# The detectors scored from features; MSP is the ODIN runs' baseline column. LA-OOD's
# hundred One-Class SVMs and hundred-layer feature pass are asked for by --methods laood.
OPT_IN = ("laood",)
COMPARED = tuple(name for name in detectors.FEATURE_DETECTORS
                 if name != "msp" and name not in OPT_IN)
SUMMARY = ("FPR at TPR 95%", "AUROC")


def parse_methods(text):
    names = [n.strip() for n in text.split(",") if n.strip()]
    for name in names:
        detector = detectors.get_detector(name)
        if detector.needs_gradient or name == "msp":
            raise UserError(f"--methods: {name} is in every comparison already (baseline and "
                            "ODIN rows come from the ODIN runs)")
    return tuple(names)


def odin_rows(args, options, sets):
    """{set: (label of the row's settings, metrics or None, reason, run folder or None)} of
    the baseline and ODIN, from the runs of the model's own results table (table.py's default
    settings)."""
    settings = table.default_settings(args.nn)
    tuner = functools.cache(lambda: tuning.Tuner(args.nn, args.tune_images, options.device,
                                                 options.batch_size, args.seed,
                                                 args.validation_set))
    chosen, why_not = table.choose_settings(args.nn, settings, tuner, sets)
    outcomes = table.evaluate(args, [table.run_key(n, c) for n, c in chosen.items()], options)
    rows = {}
    for name in sets:
        choice, result, reason = outcomes.of(name, chosen, why_not)
        by = f"T={choice.temperature}, eps={choice.epsilon}, {choice.by}" if choice else ""
        folder = outcomes.folders.get(table.run_key(name, choice)) if result is not None else None
        rows[name] = (by, result, reason, folder)
    return rows


def detector_rows(args, options, sets, methods):
    """{(set, method label): metrics}, {set: reason it cannot run} and {(set, method label):
    (run folder, label)} of the detectors."""
    plans, why_not = {}, {}
    for name in sets:
        for method in methods:
            try:
                plans[name, method] = runs.plan(cli.run_settings(
                    args, out_dataset=name, method=method, temperature=None, epsilon=None),
                    force=args.force)
            except UserError as e:
                why_not[name] = str(e)
    todo = [p for p in plans.values() if args.force or not feature_runs.finished(p)]
    # larger sets first: their in-distribution features then serve iSUN's shorter range
    todo.sort(key=lambda p: -len(p.indices))
    if todo:
        scorer = feature_runs.FeatureScorer(args.nn, options)
        for p in tqdm(todo, desc=f"{args.nn}: {len(todo)} detector run(s)", unit="run",
                      dynamic_ncols=True):
            scorer.score(p)
    metrics, sources = {}, {}
    for (name, method), p in plans.items():
        label = detectors.get_detector(method).label
        metrics[name, label] = metric_block.run_metrics(p.folder, args.metrics,
                                                        p.spec.num_classes)[label]
        sources[name, label] = (p.folder, label)
    return metrics, why_not, sources


def layerwise_rows(args, options, sets):
    """Mahalanobis in full and FSSD, both validations: ({(set, label): metrics},
    {label: note}, {set: reason it cannot run}, {(set, label): (run folder, method name)})."""
    num_classes = get_spec(args.nn).num_classes
    folders, why_not = layerwise_runs.run(args.nn, options, sets, args.seed, args.skip,
                                          args.max_images, refresh=args.force)
    metrics, chosen, sources = {}, {row.label: [] for row in layerwise_runs.ROWS}, {}
    for (name, row), folder in folders.items():
        metrics[name, row.label] = metric_block.run_metrics(folder, args.metrics,
                                                            num_classes)[row.tag]
        sources[name, row.label] = (folder, row.tag)
        chosen[row.label].append(f"{get_ood_set(name).label} "
                                 f"{read_run_info(folder)['magnitude']}")
    notes = {}
    held, fit = layerwise_runs.VALIDATION, layerwise_runs.FIT
    for row in layerwise_runs.ROWS:
        against = ("the same set's" if row.validation == "ood" else
                   f"{layerwise_runs.VALIDATION_SET}'s (Tiny-ImageNet val, for every set)")
        source = "the FSSD code" if row.method == "fssd" else "Lee et al."
        notes[row.label] = (f"layers combined by logistic regression, fitted on the first "
                            f"{fit} test images against the first {fit} of {against}, eps "
                            f"chosen from a grid of {len(row.grid)} ({source}) on the next "
                            f"{held - fit} of each; eps chosen: " + ", ".join(chosen[row.label]))
    return metrics, notes, why_not, sources


@dataclass
class Comparison:
    spec: object
    rows: list            # detector labels, in table order
    notes: dict           # label -> settings note
    metrics: dict         # (set, label) -> {metric: value}
    why_not: dict         # set -> the reason it cannot run here
    odin_settings: dict   # set -> ODIN's (T, eps) and how they were chosen
    sources: dict         # (set, label) -> (run folder, method name): the cell's scores
    sets: list            # the sets asked for, in table order
    metric_mode: str      # --metrics

    @property
    def ran(self):
        """The sets with at least one scored row."""
        return [s for s in self.sets if any((s, r) in self.metrics for r in self.rows)]


def comparison(args):
    """The Comparison of every detector on every OOD set of ``args``."""
    spec = get_spec(cli.resolve_model(args))
    cli.check_validation_set(args)
    runs.check_image_range(args.skip, args.max_images)
    cli.check_tuning_images(args)
    methods = parse_methods(args.methods) if args.methods else COMPARED
    test_set(spec.in_dataset, spec.image_size)   # the test set and the weights, before any
    weights_sha256(args.nn)              # work, in main.py's order (so with its message)
    sets = table.sets_of(args)
    files.check_writable(results_dir(), "results folder")
    options = cli.scoring_options(args)
    fitted = [m for m in methods if detectors.get_detector(m).needs_training]
    if fitted or args.layerwise:         # their training set, before any work
        scorer = feature_runs.FeatureScorer(args.nn, options)
        for method in fitted:
            if detectors.get_detector(method).class_conditional:
                scorer.check_labels(method)
        if args.layerwise:
            scorer.check_labels("Mahalanobis in full")
        scorer.training_set(", ".join(fitted) or "Mahalanobis in full")
    runtime.configure_allocator()
    odin = odin_rows(args, options, sets)
    unusable = {}      # a detector that cannot apply to this model (GEN's top_m > classes)
    for method in methods:
        try:
            detectors.make(method).check_classes(spec.num_classes)
        except UserError as e:
            unusable[method] = str(e)
    metrics, why_not, sources = detector_rows(args, options, sets,
                                              [m for m in methods if m not in unusable])
    odin_table = args.nn + table.tuning_suffix(args)   # the model's table over every image
    notes = {BASELINE: "T=1, no perturbation", ODIN: f"(T, eps) of results/{odin_table}.md, "
             f"tuned on the first {args.tune_images} held-out images a side"}
    for name, (by, result, reason, folder) in odin.items():
        if result is None:
            why_not.setdefault(name, reason)
            continue
        metrics[name, BASELINE] = result["Baseline"]
        metrics[name, ODIN] = result["ODIN"]
        sources[name, BASELINE] = (folder, "Baseline")
        sources[name, ODIN] = (folder, "ODIN")
    rows = [BASELINE, ODIN]
    for method in methods:
        detector = detectors.make(method)
        rows.append(detector.label)
        notes[detector.label] = (", ".join(f"{k}={'the paper rule' if v is None else v}"
                                           for k, v in detector.params.items())
                                 or "no parameter") + f"; {detector.paper}"
        if method in unusable:
            notes[detector.label] += f"; not run: {unusable[method]}"
    if args.layerwise:
        layer_metrics, layer_notes, layer_why_not, layer_sources = layerwise_rows(
            args, options, sets)
        metrics.update(layer_metrics)
        sources.update(layer_sources)
        notes.update(layer_notes)
        rows += [row.label for row in layerwise_runs.ROWS]
        for name, reason in layer_why_not.items():
            why_not.setdefault(name, reason)
    return Comparison(spec, rows, notes, metrics, why_not, {n: odin[n][0] for n in sets},
                      sources, sets, args.metrics)


def comparison_name(args):
    """detectors_<nn>[_methods-A-B][_tune<N>][_skip<S>][_n<N>]: a smaller comparison (fewer
    detectors, tuning or test images) never replaces the whole one."""
    chosen = parse_methods(args.methods) if args.methods else COMPARED
    methods = "" if chosen == COMPARED else "_methods-" + "-".join(chosen)
    return f"detectors_{args.nn}{methods}{table.protocol_suffix(args)}"


@by_leader
def assessment_of(args, found, ran):
    """The intervals and tests of the table's cells (reports/uncertainty.py), or None when
    the table shows another definition of the metrics than the exact one they resample."""
    if args.metrics != "exact":
        return None
    return uncertainty.assess(metric_block.cell_scores(found.sources), ran, found.rows,
                              args.resamples, args.bootstrap_seed)


def summary_table(metric, ran, found, assessment):
    """Markdown lines of one metric: a row per detector, a column per set and the mean."""
    if assessment is None:
        caption = (f"**{metric}** (%; no intervals: they are of the exact metrics, and this "
                   f"table shows --metrics {found.metric_mode})")
    else:
        caption = uncertainty.caption(metric, assessment)
    lines = ["", caption, "",
             "| detector | " + " | ".join(get_ood_set(s).label for s in ran) + " | mean |",
             "|---|" + "---|" * (len(ran) + 1)]
    digits = {} if assessment is None else {
        c: uncertainty.column_digits(assessment, c, found.rows, metric)
        for c in [*ran, uncertainty.MEAN]}
    for row in found.rows:
        cells = []
        for column in [*ran, uncertainty.MEAN]:
            if assessment is not None and (column, row) in assessment.intervals:
                cells.append(uncertainty.cell(assessment.intervals[column, row][metric],
                                              assessment.is_best(column, row, metric),
                                              digits[column]))
            elif column == uncertainty.MEAN:
                done = [found.metrics[s, row][metric] for s in ran if (s, row) in found.metrics]
                cells.append(f"{100 * np.mean(done):.1f}" if ran and len(done) == len(ran)
                             else "")
            else:
                value = found.metrics.get((column, row), {}).get(metric)
                cells.append("" if value is None else f"{100 * value:.1f}")
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    return lines


@by_leader
def write_tables(args, found, assessment=None):
    """results/<comparison_name>.md and .csv (and _pairs.csv with an assessment); returns
    the markdown."""
    ran = found.ran
    lines = [f"{args.nn} ({found.spec.label}, {found.spec.in_dataset}): every detector on every "
             f"OOD set here. {args.metrics.capitalize()} metrics, %; in-distribution is the "
             f"positive class; images from index {args.skip} of each set"
             + (f", at most {args.max_images} a side" if args.max_images else "") + "."]
    for metric in SUMMARY:
        lines += summary_table(metric, ran, found, assessment)
    name = comparison_name(args)
    if assessment is not None:
        labels = {s: get_ood_set(s).label for s in ran}
        lines += uncertainty.constant_notes(assessment, labels)
        lines += [""] + uncertainty.pairs_summary(assessment, ran, labels)
        uncertainty.write_pairs_csv(results_dir() / f"{name}_pairs.csv", assessment)
    lines += ["", "| detector | settings |", "|---|---|"]
    lines += [f"| {row} | {found.notes[row]} |" for row in found.rows]
    lines += ["", "ODIN's (T, eps) per set: " + "; ".join(
        f"{get_ood_set(s).label}: {found.odin_settings[s]}" for s in ran
        if found.odin_settings.get(s)) + "."]
    missing = [f"- {get_ood_set(s).label}: {r}" for s, r in found.why_not.items()
               if s not in ran]
    if missing:
        lines += ["", "Not run here:"] + missing
    text = "\n".join(lines) + "\n"
    results_dir().mkdir(parents=True, exist_ok=True)
    files.write_text(results_dir() / f"{name}.md", text)
    with files.writing(results_dir() / f"{name}.csv", newline="") as f:
        out = csv.writer(f)
        out.writerow(["ood_set", "detector", *METRICS, *uncertainty.interval_fields(), "note"])
        for s in table.sets_of(args):
            if s not in ran:
                out.writerow([s, "", *[""] * (len(METRICS) + 2 * len(uncertainty.METRICS)),
                              found.why_not.get(s, "")])
                continue
            for row in found.rows:
                if (s, row) in found.metrics:
                    out.writerow([s, row, *(f"{100 * found.metrics[s, row][m]:.2f}"
                                            for m in METRICS),
                                  *(uncertainty.interval_cells(assessment, s, row)
                                    if assessment else [""] * 2 * len(uncertainty.METRICS)),
                                  ""])
    return text


def report(args):
    started = time.time()
    found = comparison(args)
    assessment = assessment_of(args, found, found.ran)
    text = write_tables(args, found, assessment)
    figure = figures.draw_detector_heatmaps(
        {(s, r): m for (s, r), m in found.metrics.items() if s in found.ran}, found.rows,
        [(s, get_ood_set(s).label) for s in found.ran],
        f"{args.nn} ({found.spec.label}, {found.spec.in_dataset})",
        figures_dir() / f"{comparison_name(args)}.png")
    written = [figure]
    if assessment is not None:
        written.append(figures.draw_forest(
            assessment, found.rows, [(s, get_ood_set(s).label) for s in found.ran],
            f"{args.nn}: each detector with its 95% intervals",
            figures_dir() / f"{comparison_name(args)}_intervals.png"))
    print(text)
    print(f"wall {time.time() - started:.0f} s. Written: "
          f"{shown(results_dir() / f'{comparison_name(args)}.md')} (and .csv, _pairs.csv), "
          + ", ".join(shown(p) for p in written))


def build_parser():
    parser = argparse.ArgumentParser(description=cli.description(__doc__),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_model_flag(parser)
    parser.add_argument("--methods", metavar="A,B",
                        help=f"detectors beside the baseline and ODIN (default all but "
                             f"{', '.join(OPT_IN)}: {','.join(COMPARED)})")
    parser.add_argument("--layerwise", action="store_true",
                        help="also Mahalanobis in full and FSSD, each validated on the tested "
                             "set's held-out images and on Tiny-ImageNet val: input gradients "
                             "per layer, hours on a CPU (see above)")
    cli.add_batch_run_flags(parser)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    return report_errors(lambda: report(args))
