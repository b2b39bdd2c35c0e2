"""The ODIN tables of one model, as the paper's Table 2 (layer 6: the table.py command).

Results tables of one model: every OOD set, baseline and ODIN, as in the paper's Table 2.

Where each set's (T, eps) comes from (--settings):

  release   T = 1000 and the release's eps (SPEC-odin.md) for the sets the release
            has; the other sets (rebuilt, extra) tuned by the paper's protocol (a).
            The default for the release's four models.
  paper     (a) each set tuned on its own held-out images
  transfer  (b) tuned once on TIN_val, a set never tested. The default for other models.
  no-ood    (c) tuned on held-out in-distribution and noise images only

--compare-modes also evaluates (a), (b) and (c) and writes them side by side.
Tuning uses the first --tune-images images of each side (code/tune.py), which
every evaluation skips. Each (set, T, eps) is an ordinary run folder under
runs/ (calMetric.py reads any of them): a finished one is reused, --force scores
it again. The model is loaded (and compiled) once; the in-distribution side of
each (T, eps) is scored once (scoring/cache.py). Sets that cannot run here are rows
that say why. Output: results/<model>.md and .csv (results/<model>_<settings>.md
where --settings is not the model's default; results/<model>_modes.md and .csv),
figures/<model>/.

    python table.py --nn densenet10 --compare-modes
    python table.py --nn resnet20
"""
import argparse
import csv
import functools
import re
import time
from dataclasses import dataclass

from tqdm import tqdm

from oodbench.commands import cli
from oodbench.core import files, runtime
from oodbench.core.paths import UserError, figures_dir, report_errors, results_dir, shown
from oodbench.core.shards import by_leader
from oodbench.datasets.image_sets import OOD_SETS, get_ood_set, set_tag, test_set
from oodbench.networks.registry import get_spec, weights_sha256
from oodbench.pipelines import runs, tuning
from oodbench.reports import figures, metric_block, uncertainty
from oodbench.scoring.metrics import METRICS

# The release README's eps at T = 1000 (SPEC-odin.md).
_RELEASE_SETS = ("Imagenet", "Imagenet_resize", "LSUN", "LSUN_resize", "iSUN", "Uniform",
                 "Gaussian")
RELEASE_EPSILON = {nn: dict(zip(_RELEASE_SETS, values)) for nn, values in {
    "densenet10": (0.0014, 0.0014, 0.0, 0.0014, 0.0014, 0.0014, 0.0014),
    "densenet100": (0.0014, 0.0028, 0.0028, 0.0028, 0.0028, 0.0028, 0.0028),
    "wideresnet10": (0.0005, 0.0011, 0.0, 0.0006, 0.0008, 0.0014, 0.0014),
    "wideresnet100": (0.0028, 0.0028, 0.0048, 0.002, 0.0028, 0.0028, 0.0028),
}.items()}
RELEASE_TEMPERATURE = 1000
SETTINGS = ("release", *tuning.MODES)
TABLE_FIELDS = ["ood_set", "temperature", "epsilon", "chosen_by", "method"]   # a table's CSV
MODE_LETTER = {"paper": "a", "transfer": "b", "no-ood": "c"}


@dataclass(frozen=True)
class Choice:
    """A row's (T, eps) and where they come from ('release', '(a) iSUN', ...)."""
    temperature: float
    epsilon: float
    by: str


def tested_sets():
    return [name for name, spec in OOD_SETS.items() if spec.in_tables and not spec.tuning_only]


def sets_of(args):
    """The OOD sets of a table: --sets (checked: a UserError for an unknown name or a bad
    path), else every OOD set of the tables."""
    sets = getattr(args, "sets", None) or tested_sets()
    size = get_spec(args.nn).image_size
    for name in sets:
        set_tag(name, size)             # a set from files: read (its path, its images) now
        get_ood_set(name)
    return list(dict.fromkeys(sets))


def sets_suffix(args):
    """_sets-A-B where --sets is not every set of the tables (sets from files by their tags)."""
    sets = sets_of(args)
    if sets == tested_sets():
        return ""
    size = get_spec(args.nn).image_size
    return "_sets-" + "-".join(set_tag(name, size) for name in sets)


def release_name(nn):
    """The registry name whose release settings apply to model ``nn`` (itself, or the
    registry model it was fitted on another training set from), else ``nn``."""
    return get_spec(nn).registry_name or nn


def default_settings(nn):
    return "release" if release_name(nn) in RELEASE_EPSILON else "transfer"


def tuning_suffix(args):
    """_tune<N>, _seed<S>, _<metrics> where the (T, eps) or the metrics are not the default
    protocol's (1,000 tuning images, noise seed 0, exact metrics)."""
    validation = getattr(args, "validation_set", None)
    return (tuning.tune_suffix(args.tune_images) + (f"_seed{args.seed}" if args.seed else "")
            + ("" if args.metrics == "exact" else f"_{args.metrics}")
            + (f"_val-{set_tag(validation, get_spec(args.nn).image_size)}"
               if validation and validation != tuning.TRANSFER_SET else ""))


def protocol_suffix(args):
    """tuning_suffix, then _skip<S>, _n<N> where not every image from index 1,000 is
    evaluated: a shorter or other run never replaces a table of the whole protocol."""
    return (tuning_suffix(args) + sets_suffix(args)
            + runs.range_suffix(args.skip, args.max_images))


def shortened(args):
    return protocol_suffix(args) != ""


def table_name(nn, settings, args):
    """results/<nn>.md for the model's default settings, <nn>_<settings>.md for the others, so
    that asking for another setting never replaces the default table; then protocol_suffix."""
    base = nn if settings == default_settings(nn) else f"{nn}_{settings}"
    return base + protocol_suffix(args)


def modes_name(nn, args):
    return f"{nn}_modes{protocol_suffix(args)}"


def choose_settings(nn, settings, tuner, sets):
    """({set: Choice}, {set: UserError}): each set's (T, eps) by ``settings``, or why not."""
    chosen, why_not = {}, {}
    for name in sets:
        release = RELEASE_EPSILON.get(release_name(nn), {})
        if settings == "release" and name in release:
            chosen[name] = Choice(RELEASE_TEMPERATURE, release[name], "release")
            continue
        mode = "paper" if settings == "release" else settings
        try:
            record = tuner().tune(mode, name)
        except UserError as e:
            why_not[name] = e
            continue
        figures.draw_tuning(record, tuning.record_name(record))
        chosen[name] = Choice(record["temperature"], record["epsilon"],
                              f"({MODE_LETTER[mode]}) {record['tuned_on']}")
    return chosen, why_not


def run_key(name, choice):
    return name, choice.temperature, choice.epsilon


@dataclass
class Outcomes:
    """What evaluating the wanted runs gave, by (set, T, eps)."""
    metrics: dict     # -> {'Baseline': {...}, 'ODIN': {...}}
    folders: dict     # -> run folder
    failed: dict      # -> UserError: the run cannot be made here

    def of(self, name, chosen, why_not):
        """(Choice or None, metrics or None, reason or ''): what the row of ``name`` shows."""
        choice = chosen.get(name)
        if choice is None:
            return None, None, str(why_not[name])
        key = run_key(name, choice)
        if key in self.failed:
            return choice, None, str(self.failed[key])
        return choice, self.metrics[key], ""


def evaluate(args, wanted, options):
    """Outcomes of the runs ``wanted`` [(set, T, eps)], scoring each unfinished run once."""
    plans, failed = {}, {}
    for k in dict.fromkeys(wanted):
        name, temperature, epsilon = k
        try:
            plans[k] = runs.plan(cli.run_settings(args, out_dataset=name,
                                                  temperature=temperature, epsilon=epsilon),
                                 force=args.force)
        except UserError as e:
            failed[k] = e
    todo = [p for p in plans.values() if args.force or not runs.finished(p.folder)]
    # Larger sets first: their in-distribution scores then serve the smaller ones (iSUN).
    todo.sort(key=lambda p: -len(p.indices))
    work = runs.images_to_score(todo, options)
    model, compiled = (runs.load_scorer(args.nn, options, sum(work.values())) if todo
                       else (None, False))
    with tqdm(total=sum(work.values()), desc=f"{args.nn}: {len(todo)} run(s) to score",
              unit="img", dynamic_ncols=True, disable=not todo) as overall:
        for p in todo:
            runs.score(model, compiled, p, options)
            overall.update(work[p.folder])
    metrics = {k: metric_block.run_metrics(p.folder, args.metrics, p.spec.num_classes)
               for k, p in plans.items()}
    return Outcomes(metrics, {k: p.folder for k, p in plans.items()}, failed)


def percent_pair(result, metric, assessment=None, name=None):
    """A main table's cell 'baseline / ODIN' of one metric: each with its interval (and in
    bold when not significantly worse than the other) where ``assessment`` has them."""
    if assessment is None or metric not in uncertainty.METRICS:
        return f"{100 * result['Baseline'][metric]:.1f} / {100 * result['ODIN'][metric]:.1f}"
    methods = ("Baseline", "ODIN")
    digits = uncertainty.column_digits(assessment, name, methods, metric)
    return " / ".join(uncertainty.cell(assessment.intervals[name, method][metric],
                                       assessment.is_best(name, method, metric), digits)
                      for method in methods)


def odin_assessment(args, sets, chosen, why_not, outcomes):
    """The intervals and paired tests of the baseline and ODIN per set (reports/
    uncertainty.py), or None where the table shows other than the exact metrics or no set
    ran (a table of 'not available here' rows has no interval to speak of)."""
    if args.metrics != "exact":
        return None
    sources = {}
    for name in sets:
        choice, result, _ = outcomes.of(name, chosen, why_not)
        if result is not None:
            folder = outcomes.folders[run_key(name, choice)]
            sources |= {(name, m): (folder, m) for m in ("Baseline", "ODIN")}
    if not sources:
        return None
    return uncertainty.assess(metric_block.cell_scores(sources), sets, ["Baseline", "ODIN"],
                              args.resamples, args.bootstrap_seed, mean=False)


def percents(result, method):
    return [f"{100 * result[method][m]:.2f}" for m in METRICS]


def header(nn, args, what):
    spec = get_spec(nn)
    return (f"{nn} ({spec.label}, {spec.in_dataset}): {what}. {args.metrics.capitalize()} "
            f"metrics, %. Tuning on the first {args.tune_images} images of each side; "
            f"evaluation on the images from index {args.skip}.")


@by_leader
def write_main_table(nn, args, settings, chosen, why_not, outcomes):
    """results/<table_name>.md (rows: OOD sets; cells 'baseline / ODIN') and its .csv."""
    name_of_table = table_name(nn, settings, args)
    assessment = odin_assessment(args, sets_of(args), chosen, why_not, outcomes)
    lines = [header(nn, args, f"baseline / ODIN, (T, eps) by '{settings}'"), ""]
    if assessment is not None:
        lines += [f"FPR at TPR 95% and AUROC with ± the 95% bootstrap interval over "
                  f"{assessment.resamples:,} resamples of the images, its larger side (the "
                  "ends in the CSV); bold: the better of the two and the other too where a "
                  "paired test (FPR95: paired bootstrap; AUROC: DeLong) cannot tell them "
                  f"apart at alpha = {uncertainty.ALPHA}.", ""]
    lines += ["| OOD set | T | eps | chosen by | " + " | ".join(METRICS) + " |",
              "|" + "---|" * (len(METRICS) + 4)]
    blank = [""] * 2 * len(uncertainty.METRICS)
    with files.writing(results_dir() / f"{name_of_table}.csv", newline="") as f:
        out = csv.writer(f)
        out.writerow([*TABLE_FIELDS, *METRICS, *uncertainty.interval_fields(), "note"])
        for name in sets_of(args):
            choice, result, reason = outcomes.of(name, chosen, why_not)
            t, e, by = (choice.temperature, choice.epsilon, choice.by) if choice else ("", "", "")
            label = get_ood_set(name).label
            if result is None:
                lines.append(f"| {label} | {t} | {e} | {by} | {reason} |"
                             + " |" * (len(METRICS) - 1))
                out.writerow([name, t, e, by, "", *[""] * len(METRICS), *blank, reason])
                continue
            lines.append(f"| {label} | {t} | {e} | {by} | " + " | ".join(
                percent_pair(result, m, assessment, name) for m in METRICS) + " |")
            for method in ("Baseline", "ODIN"):
                out.writerow([name, t, e, by, method, *percents(result, method),
                              *(uncertainty.interval_cells(assessment, name, method)
                                if assessment else blank), ""])
    text = "\n".join(lines) + "\n"
    files.write_text(results_dir() / f"{name_of_table}.md", text)
    return text


def modes_assessment(args, by_mode, outcomes):
    """Intervals and paired tests of the baseline and each mode's ODIN per set, or None
    where the table shows other than the exact metrics."""
    if args.metrics != "exact":
        return None
    sources = {}
    for name in sets_of(args):
        for mode in tuning.MODES:
            choice, result, _ = outcomes.of(name, *by_mode[mode])
            if result is not None:
                folder = outcomes.folders[run_key(name, choice)]
                sources[name, f"({MODE_LETTER[mode]})"] = (folder, "ODIN")
                sources.setdefault((name, "Baseline"), (folder, "Baseline"))
    rows = ["Baseline", *(f"({MODE_LETTER[m]})" for m in tuning.MODES)]
    return uncertainty.assess(metric_block.cell_scores(sources), sets_of(args), rows,
                              args.resamples, args.bootstrap_seed, mean=False)


@by_leader
def write_modes_table(nn, args, by_mode, outcomes):
    """results/<modes_name>.md: FPR95 and AUROC of (a), (b), (c) side by side, and a CSV.
    ``by_mode``: {mode: (chosen, why_not)}."""
    fpr, auroc = "FPR at TPR 95%", "AUROC"
    assessment = modes_assessment(args, by_mode, outcomes)

    def cell_text(name, row, metric, result):
        if assessment is None:
            return f"{100 * result[metric]:.1f}"
        return uncertainty.cell(assessment.intervals[name, row][metric],
                                assessment.is_best(name, row, metric))
    cols = "".join(f" ({MODE_LETTER[m]}) T, eps | ({MODE_LETTER[m]}) FPR95 | "
                   f"({MODE_LETTER[m]}) AUROC |" for m in tuning.MODES)
    lines = [header(nn, args, "ODIN tuned three ways") + " (a) paper: each set's own held-out "
             "images; (b) transfer: TIN_val only; (c) no OOD data: held-out noise only."
             + ("" if assessment is None else " ± the 95% bootstrap interval over "
                f"{assessment.resamples:,} resamples of the images, its larger side; bold: the "
                "best of the row's four (baseline, (a), (b), (c)) and every one not "
                "significantly worse than it (FPR95: paired bootstrap; AUROC: DeLong; Holm "
                f"over the row, alpha = {uncertainty.ALPHA})."), "",
             "| OOD set | baseline FPR95 | baseline AUROC |" + cols,
             "|" + "---|" * (3 + 3 * len(tuning.MODES))]
    with files.writing(results_dir() / f"{modes_name(nn, args)}.csv", newline="") as f:
        out = csv.writer(f)
        out.writerow(["ood_set", "mode", "temperature", "epsilon", "method", *METRICS, "note"])
        for name in sets_of(args):
            cells, baseline = [], None
            for mode in tuning.MODES:
                choice, result, reason = outcomes.of(name, *by_mode[mode])
                t, e = (choice.temperature, choice.epsilon) if choice else ("", "")
                if result is None:
                    cells += [f"{t}, {e}" if t else "", "n/a", "n/a"]
                    out.writerow([name, mode, t, e, "", *[""] * len(METRICS), reason])
                    continue
                baseline = cell_text(name, "Baseline", fpr, result["Baseline"]), \
                    cell_text(name, "Baseline", auroc, result["Baseline"])
                row = f"({MODE_LETTER[mode]})"
                cells += [f"{t}, {e}", cell_text(name, row, fpr, result["ODIN"]),
                          cell_text(name, row, auroc, result["ODIN"])]
                for method in ("Baseline", "ODIN"):
                    out.writerow([name, mode, t, e, method, *percents(result, method), ""])
            base = (list(baseline) if baseline
                    else [f"not run here (see results/"
                          f"{table_name(nn, default_settings(nn), args)}.md)", ""])
            lines.append(f"| {get_ood_set(name).label} | " + " | ".join(base + cells) + " |")
    lines += ["", "On the Uniform and Gaussian rows, (c) is tuned on the same kind of noise it is "
              "tested on (other images), so (c) is an out-of-sample test only on the other rows."]
    text = "\n".join(lines) + "\n"
    files.write_text(results_dir() / f"{modes_name(nn, args)}.md", text)
    return text


@by_leader
def write_summary():
    """results/README.md: one line per model table (table.py's, over every image from index
    1,000; any number of tuning images), means over the sets that ran."""
    lines = ["# Results", "", "One table per model (`bash scripts/reproduce_tables.sh`); each "
             "row of a table is baseline / ODIN on one OOD set. Means are over the sets that "
             "ran here, so compare models only on the same sets.", "",
             "| model | table | sets run | (T, eps) chosen by | mean FPR95 baseline → ODIN | "
             "mean AUROC baseline → ODIN |", "|---|---|---|---|---|---|"]
    for path in sorted(results_dir().glob("*.csv")):
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            if ((reader.fieldnames or [])[:5] != TABLE_FIELDS
                    or re.search(r"_(skip|n)\d+$", path.stem)):
                continue
            records = list(reader)
        ran = {(r["ood_set"], r["method"]): r for r in records if r["method"]}
        sets = sorted({s for s, _ in ran})
        by = ", ".join(sorted({r["chosen_by"].split(")")[0] + ")" if ")" in r["chosen_by"]
                               else r["chosen_by"] for r in ran.values()}))

        def mean(method, metric):
            return sum(float(ran[(s, method)][metric]) for s in sets) / len(sets)
        cells = ([f"{mean('Baseline', m):.1f} → {mean('ODIN', m):.1f}"
                  for m in ("FPR at TPR 95%", "AUROC")] if sets else ["not run here", ""])
        lines.append(f"| {path.stem} | [{path.stem}.md]({path.stem}.md) | "
                     f"{len(sets)} of {len({r['ood_set'] for r in records})} | {by} | "
                     + " | ".join(cells) + " |")
    files.write_text(results_dir() / "README.md", "\n".join(lines) + "\n")


def run_table(args, settings):
    """Write the model's table(s); return the texts of the main and modes tables."""
    cli.resolve_model(args)                             # bad input stops before any work
    cli.check_validation_set(args)
    runs.check_image_range(args.skip, args.max_images)
    cli.check_tuning_images(args)
    files.check_writable(results_dir(), "results folder")
    options = cli.scoring_options(args)
    runtime.configure_allocator()
    results_dir().mkdir(parents=True, exist_ok=True)
    sets = sets_of(args)
    try:
        weights_sha256(args.nn)
        test_set(get_spec(args.nn).in_dataset, get_spec(args.nn).image_size)
    except UserError as e:
        print(f"{args.nn} cannot run here: {e}")
        nothing = Outcomes({}, {}, {})
        return write_main_table(args.nn, args, settings, {}, {n: e for n in sets}, nothing), ""
    # one Tuner, made only if some row needs tuning
    tuner = functools.cache(lambda: tuning.Tuner(args.nn, args.tune_images, options.device,
                                                 options.batch_size, args.seed,
                                                 args.validation_set))
    chosen, why_not = choose_settings(args.nn, settings, tuner, sets)
    by_mode = ({m: choose_settings(args.nn, m, tuner, sets) for m in tuning.MODES}
               if args.compare_modes else {})
    tables = [chosen, *(mode_chosen for mode_chosen, _ in by_mode.values())]
    wanted = [run_key(name, c) for table in tables for name, c in table.items()]
    outcomes = evaluate(args, wanted, options)
    main_runs = [outcomes.folders[k] for k in (run_key(n, c) for n, c in chosen.items())
                 if k in outcomes.folders]
    figures.draw_runs(main_runs, quiet=True)
    text = write_main_table(args.nn, args, settings, chosen, why_not, outcomes)
    modes = write_modes_table(args.nn, args, by_mode, outcomes) if by_mode else ""
    return text, modes


def build_parser():
    parser = argparse.ArgumentParser(description=cli.description(__doc__),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_model_flag(parser)
    parser.add_argument("--settings", choices=SETTINGS,
                        help="where (T, eps) come from (default: release for the release's "
                             "models, transfer for the others)")
    parser.add_argument("--compare-modes", action="store_true",
                        help="also evaluate the three tuning modes side by side")
    parser.add_argument("--index", action="store_true",
                        help="only rewrite results/README.md, the index of the tables there "
                             "(a run of the whole protocol rewrites it too; a shorter one not)")
    cli.add_batch_run_flags(parser)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.index:
        return report_errors(write_summary)
    return report_errors(lambda: report_table(args))


def report_table(args):
    started = time.time()
    cli.resolve_model(args)
    settings = args.settings or default_settings(args.nn)
    text, modes = run_table(args, settings)
    written = [results_dir() / f"{table_name(args.nn, settings, args)}.md"]
    if modes:
        written.append(results_dir() / f"{modes_name(args.nn, args)}.md")
    if not shortened(args):     # a shortened run leaves results/README.md as it is
        write_summary()         # (reproduce_tables.sh rewrites it at its end: --index)
        written.append(results_dir() / "README.md")
    print(text + ("\n" + modes if modes else ""))
    print(f"wall {time.time() - started:.0f} s. Written: "
          f"{', '.join(shown(p) for p in written)} (and .csv), {shown(figures_dir() / args.nn)}/")
