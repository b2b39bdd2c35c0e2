"""Results tables of one model: every OOD set, baseline and ODIN, as in the paper's Table 2.

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
each (T, eps) is scored once (code/cache.py). Sets that cannot run here are rows
that say why. Output: results/<model>.md and .csv (results/<model>_<settings>.md
where --settings is not the model's default; results/<model>_modes.md and .csv),
figures/<model>/.

    python table.py --nn densenet10 --compare-modes
    python table.py --nn resnet20
"""
import argparse
import copy
import csv
import functools
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tqdm import tqdm  # noqa: E402

import cache  # noqa: E402
import calMetric  # noqa: E402
import figures  # noqa: E402
import main  # noqa: E402
import runtime  # noqa: E402
import tune  # noqa: E402
from datasets import OOD_SETS, cifar  # noqa: E402
from models import get_spec, load_model, weights_sha256  # noqa: E402
from paths import ROOT, UserError, report_errors  # noqa: E402

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
SETTINGS = ("release", *tune.MODES)
MODE_LETTER = {"paper": "a", "transfer": "b", "no-ood": "c"}
RESULTS_DIR = ROOT / "results"


def tested_sets():
    return [name for name, spec in OOD_SETS.items() if not spec.tuning_only]


def default_settings(nn):
    return "release" if nn in RELEASE_EPSILON else "transfer"


def table_name(nn, settings):
    """results/<nn>.md for the model's default settings, <nn>_<settings>.md for the others, so
    that asking for another setting never replaces the default table."""
    return nn if settings == default_settings(nn) else f"{nn}_{settings}"


def finished(folder):
    """The run.json of a complete run folder, else None."""
    info = calMetric.read_run_info(folder)
    scores = folder / calMetric.SCORE_DIR
    done = info and all((scores / f"confidence_{m}_{s}.txt").is_file()
                        for m in ("Base", "Our") for s in ("In", "Out"))
    return info if done else None


def choose_settings(nn, settings, tuner, sets):
    """{set: (T, eps, where they come from)}, or {set: why not} where tuning cannot run."""
    chosen = {}
    for name in sets:
        if settings == "release" and name in RELEASE_EPSILON.get(nn, {}):
            chosen[name] = (RELEASE_TEMPERATURE, RELEASE_EPSILON[nn][name], "release")
            continue
        mode = "paper" if settings == "release" else settings
        try:
            record = tuner().tune(mode, name)
        except UserError as e:
            chosen[name] = str(e)
            continue
        chosen[name] = (record["temperature"], record["epsilon"],
                        f"({MODE_LETTER[mode]}) {record['tuned_on']}")
    return chosen


def evaluate(args, wanted, device):
    """{(set, T, eps): (run folder, metrics) or why not}, scoring each unfinished run once."""
    outcomes, plans = {}, {}
    for name, temperature, epsilon in dict.fromkeys(wanted):
        run = copy.copy(args)
        run.out_dataset, run.temperature, run.magnitude = name, temperature, epsilon
        try:
            plans[(name, temperature, epsilon)] = (run, main.plan(run))
        except UserError as e:
            outcomes[(name, temperature, epsilon)] = str(e)
    todo = [k for k, (run, _) in plans.items() if args.force or not finished(main.run_folder(run))]
    # Larger sets first: their in-distribution scores then serve the smaller ones (iSUN).
    todo.sort(key=lambda k: -len(plans[k][1][4]))
    work = images_to_score(todo, plans, args, device)
    compiled = runtime.should_compile(args.compile, device, sum(work.values()))
    model = runtime.prepare_model(load_model(args.nn, device)[0], device, compiled) if todo else None
    with tqdm(total=sum(work.values()), desc=f"{args.nn}: {len(todo)} run(s) to score",
              unit="img", dynamic_ncols=True, disable=not todo) as overall:
        for k in todo:
            run, planned = plans[k]
            main.score_pair(model, compiled, planned, run, device)
            overall.update(work[k])
    for k, (run, _) in plans.items():
        folder = main.run_folder(run)
        outcomes[k] = (folder, calMetric.run_metrics(folder, args.metrics,
                                                      finished(folder)["num_classes"]))
    return outcomes


def images_to_score(todo, plans, args, device):
    """{run: images it will really score}, so that the overall ETA is right: its OOD side,
    and its in-distribution side unless an earlier run or the cache has that (T, eps)."""
    work, seen = {}, set()
    for k in todo:
        run, (spec, _, _, ind, indices) = plans[k]
        setting = (run.temperature, run.magnitude)
        fresh = args.no_cache or not (setting in seen or cache.covers(
            main.in_distribution_key(spec, ind, run, device), indices))
        seen.add(setting)
        work[k] = len(indices) * (2 if fresh else 1)
    return work


def percent_pair(result, metric):
    return f"{100 * result['Baseline'][metric]:.1f} / {100 * result['ODIN'][metric]:.1f}"


def header(nn, args, what):
    spec = get_spec(nn)
    return (f"{nn} ({spec.label}, {spec.in_dataset}): {what}. {args.metrics.capitalize()} "
            f"metrics, %. Tuning on the first {args.tune_images} images of each side; "
            f"evaluation on the images from index {args.skip}.")


def write_main_table(nn, args, chosen, outcomes):
    """results/<table_name>.md (rows: OOD sets; cells 'baseline / ODIN') and its .csv."""
    name_of_table = table_name(nn, args.settings)
    lines = [header(nn, args, f"baseline / ODIN, (T, eps) by '{args.settings}'"), "",
             "| OOD set | T | eps | chosen by | " + " | ".join(calMetric.METRICS) + " |",
             "|" + "---|" * (len(calMetric.METRICS) + 4)]
    with open(RESULTS_DIR / f"{name_of_table}.csv", "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["ood_set", "temperature", "epsilon", "chosen_by", "method",
                      *calMetric.METRICS, "note"])
        for name, setting in chosen.items():
            label = OOD_SETS[name].label
            t, e, by = setting if isinstance(setting, tuple) else ("", "", "")
            outcome = outcomes.get((name, t, e), setting)
            if isinstance(outcome, str):
                lines.append(f"| {label} | {t} | {e} | {by} | {outcome} |"
                             + " |" * (len(calMetric.METRICS) - 1))
                out.writerow([name, t, e, by, "", *[""] * len(calMetric.METRICS), outcome])
                continue
            result = outcome[1]
            lines.append(f"| {label} | {t} | {e} | {by} | "
                         + " | ".join(percent_pair(result, m) for m in calMetric.METRICS) + " |")
            for method in ("Baseline", "ODIN"):
                out.writerow([name, t, e, by, method,
                              *[f"{100 * result[method][m]:.2f}" for m in calMetric.METRICS], ""])
    text = "\n".join(lines) + "\n"
    (RESULTS_DIR / f"{name_of_table}.md").write_text(text)
    return text


def write_modes_table(nn, args, by_mode, outcomes):
    """results/<nn>_modes.md: FPR95 and AUROC of (a), (b), (c) side by side, and a CSV."""
    fpr, auroc = "FPR at TPR 95%", "AUROC"
    cols = "".join(f" ({MODE_LETTER[m]}) T, eps | ({MODE_LETTER[m]}) FPR95 | "
                   f"({MODE_LETTER[m]}) AUROC |" for m in tune.MODES)
    lines = [header(nn, args, "ODIN tuned three ways") + " (a) paper: each set's own held-out "
             "images; (b) transfer: TIN_val only; (c) no OOD data: held-out noise only.", "",
             "| OOD set | baseline FPR95 | baseline AUROC |" + cols,
             "|" + "---|" * (3 + 3 * len(tune.MODES))]
    with open(RESULTS_DIR / f"{nn}_modes.csv", "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["ood_set", "mode", "temperature", "epsilon", "method",
                      *calMetric.METRICS, "note"])
        for name in tested_sets():
            cells, baseline = [], None
            for mode in tune.MODES:
                setting = by_mode[mode][name]
                t, e, _ = setting if isinstance(setting, tuple) else ("", "", "")
                outcome = outcomes.get((name, t, e), setting)
                if isinstance(outcome, str):
                    cells += [f"{t}, {e}" if t else "", "n/a", "n/a"]
                    out.writerow([name, mode, t, e, "", *[""] * len(calMetric.METRICS), outcome])
                    continue
                result = outcome[1]
                baseline = result["Baseline"]
                cells += [f"{t}, {e}", f"{100 * result['ODIN'][fpr]:.1f}",
                          f"{100 * result['ODIN'][auroc]:.1f}"]
                for method in ("Baseline", "ODIN"):
                    out.writerow([name, mode, t, e, method, *[f"{100 * result[method][m]:.2f}"
                                                              for m in calMetric.METRICS], ""])
            base = ([f"{100 * baseline[fpr]:.1f}", f"{100 * baseline[auroc]:.1f}"] if baseline
                    else ["not run here (see results/%s.md)" % nn, ""])
            lines.append(f"| {OOD_SETS[name].label} | " + " | ".join(base + cells) + " |")
    lines += ["", "On the Uniform and Gaussian rows, (c) is tuned on the same kind of noise it is "
              "tested on (other images), so (c) is an out-of-sample test only on the other rows."]
    text = "\n".join(lines) + "\n"
    (RESULTS_DIR / f"{nn}_modes.md").write_text(text)
    return text


def write_summary():
    """results/README.md: one line per model table, means over the sets that ran."""
    lines = ["# Results", "", "One table per model (`bash scripts/reproduce_tables.sh`); each "
             "row of a table is baseline / ODIN on one OOD set. Means are over the sets that "
             "ran here, so compare models only on the same sets.", "",
             "| model | table | sets run | (T, eps) chosen by | mean FPR95 baseline → ODIN | "
             "mean AUROC baseline → ODIN |", "|---|---|---|---|---|---|"]
    for path in sorted(RESULTS_DIR.glob("*.csv")):
        if path.stem.endswith("_modes"):
            continue
        with open(path, newline="") as f:
            records = list(csv.DictReader(f))
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
    (RESULTS_DIR / "README.md").write_text("\n".join(lines) + "\n")


def unavailable_table(nn, args, reason):
    """Every row of a model that cannot run here says why."""
    chosen = {name: reason for name in tested_sets()}
    return write_main_table(nn, args, chosen, {})


def run_table(args):
    main.check_args(args)
    device = main.pick_device(args.gpu, args.device)
    runtime.configure_allocator()
    RESULTS_DIR.mkdir(exist_ok=True)
    try:
        weights_sha256(args.nn)
        cifar(get_spec(args.nn).in_dataset)
    except UserError as e:
        print(f"{args.nn} cannot run here: {e}")
        return unavailable_table(args.nn, args, str(e)), ""
    # one Tuner, made only if some row needs tuning
    tuner = functools.cache(lambda: tune.Tuner(args.nn, args.tune_images, device,
                                               args.batch_size, args.seed))

    sets = tested_sets()
    chosen = choose_settings(args.nn, args.settings, tuner, sets)
    by_mode = ({m: choose_settings(args.nn, m, tuner, sets) for m in tune.MODES}
               if args.compare_modes else {})
    wanted = [(name, *setting[:2]) for table in (chosen, *by_mode.values())
              for name, setting in table.items() if isinstance(setting, tuple)]
    outcomes = evaluate(args, wanted, device)
    main_runs = [outcomes[(n, *s[:2])] for n, s in chosen.items() if isinstance(s, tuple)]
    figures.draw_runs([o[0] for o in main_runs if isinstance(o, tuple)], quiet=True)
    text = write_main_table(args.nn, args, chosen, outcomes)
    modes = write_modes_table(args.nn, args, by_mode, outcomes) if by_mode else ""
    return text, modes


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nn", default="densenet10", metavar="MODEL",
                        help="model name, as for main.py (default densenet10)")
    parser.add_argument("--settings", choices=SETTINGS,
                        help="where (T, eps) come from (default: release for the release's "
                             "models, transfer for the others)")
    parser.add_argument("--compare-modes", action="store_true",
                        help="also evaluate the three tuning modes side by side")
    parser.add_argument("--force", action="store_true", help="score finished runs again")
    tune.add_tuning_flags(parser)
    main.add_run_flags(parser)
    return parser


def main_cli(argv=None):
    args = build_parser().parse_args(argv)
    args.settings = args.settings or default_settings(args.nn)
    # per-run settings, filled in by evaluate(); these placeholders pass check_args
    args.out_dir, args.out_dataset, args.magnitude, args.temperature = None, "iSUN", 0.0, 1
    return report_errors(lambda: report_table(args))


def report_table(args):
    started = time.time()
    text, modes = run_table(args)
    write_summary()
    print(text + ("\n" + modes if modes else ""))
    written = (f"results/{table_name(args.nn, args.settings)}.md, .csv"
               + (f", results/{args.nn}_modes.md" if modes else "")
               + ", results/README.md")
    print(f"wall {time.time() - started:.0f} s. Written: {written}, figures/{args.nn}/")


if __name__ == "__main__":
    sys.exit(main_cli())
