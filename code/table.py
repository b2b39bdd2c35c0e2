"""Run a model against every OOD set, in one process, and write its results table.

The model is loaded (and compiled) once and the in-distribution images are
scored once (code/cache.py); each OOD set is scored once. Each pair is a normal
run folder under runs/, so ``calMetric.py`` reads any of them, and a finished
pair is reused on the next call (``--force`` scores it again). Sets that cannot
run here are rows that say why. Output: results/<model>.md and .csv.

    python table.py --nn densenet10
"""
import argparse
import copy
import csv
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import calMetric  # noqa: E402
import main  # noqa: E402
import runtime  # noqa: E402
from datasets import OOD_SETS  # noqa: E402
from models import load_model  # noqa: E402
from paths import ROOT, UserError, report_errors  # noqa: E402

# The release README's eps at T = 1000 (SPEC-odin.md); sets it never used get DEFAULT_EPSILON.
_RELEASE_SETS = ("Imagenet", "Imagenet_resize", "LSUN", "LSUN_resize", "iSUN", "Uniform",
                 "Gaussian")
RELEASE_EPSILON = {nn: dict(zip(_RELEASE_SETS, values)) for nn, values in {
    "densenet10": (0.0014, 0.0014, 0.0, 0.0014, 0.0014, 0.0014, 0.0014),
    "densenet100": (0.0014, 0.0028, 0.0028, 0.0028, 0.0028, 0.0028, 0.0028),
    "wideresnet10": (0.0005, 0.0011, 0.0, 0.0006, 0.0008, 0.0014, 0.0014),
    "wideresnet100": (0.0028, 0.0028, 0.0048, 0.002, 0.0028, 0.0028, 0.0028),
}.items()}
DEFAULT_EPSILON = 0.0014
RESULTS_DIR = ROOT / "results"


def epsilon_for(nn, ood):
    return RELEASE_EPSILON.get(nn, {}).get(ood, DEFAULT_EPSILON)


def finished(folder):
    """The run.json of a complete run folder, else None."""
    info = calMetric.read_run_info(folder)
    scores = folder / calMetric.SCORE_DIR
    done = info and all((scores / f"confidence_{m}_{s}.txt").is_file()
                        for m in ("Base", "Our") for s in ("In", "Out"))
    return info if done else None


def write_table(nn, rows, metrics_mode):
    """results/<nn>.md (paper layout, 'baseline / ODIN' in %) and results/<nn>.csv."""
    RESULTS_DIR.mkdir(exist_ok=True)
    head = "| OOD set | eps | " + " | ".join(calMetric.METRICS) + " |"
    lines = [f"{nn}: baseline / ODIN, T = 1000, {metrics_mode} metrics, %", "", head,
             "|" + "---|" * (len(calMetric.METRICS) + 2)]
    with open(RESULTS_DIR / f"{nn}.csv", "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["ood_set", "epsilon", "method", *calMetric.METRICS, "note"])
        for name, eps, result, note in rows:
            label = OOD_SETS[name].label
            if result is None:
                lines.append(f"| {label} | {eps} | {note} |" + " |" * (len(calMetric.METRICS) - 1))
                out.writerow([name, eps, "", *[""] * len(calMetric.METRICS), note])
                continue
            cells = [f"{100 * result['Baseline'][m]:.1f} / {100 * result['ODIN'][m]:.1f}"
                     for m in calMetric.METRICS]
            lines.append(f"| {label} | {eps} | " + " | ".join(cells) + " |")
            for method in ("Baseline", "ODIN"):
                out.writerow([name, eps, method,
                              *[f"{100 * result[method][m]:.2f}" for m in calMetric.METRICS], ""])
    (RESULTS_DIR / f"{nn}.md").write_text("\n".join(lines) + "\n")
    return "\n".join(lines)


def run_table(args):
    main.check_args(args)
    device = main.pick_device(args.gpu, args.device)
    runtime.configure_allocator()
    plans, rows = {}, {}
    tested = [name for name, spec in OOD_SETS.items() if not spec.tuning_only]
    for name in tested:
        pair = copy.copy(args)
        pair.out_dataset, pair.magnitude = name, epsilon_for(args.nn, name)
        try:
            plans[name] = (pair, main.plan(pair))
        except UserError as e:
            rows[name] = (pair.magnitude, None, str(e))
    todo = [n for n, (pair, _) in plans.items()
            if args.force or not finished(main.run_folder(pair))]
    # Larger sets first: their in-distribution scores then serve the smaller ones (iSUN).
    todo.sort(key=lambda n: -len(plans[n][1][4]))
    images = sum(2 * len(plans[n][1][4]) for n in todo)
    compiled = runtime.should_compile(args.compile, device, images)
    model = runtime.prepare_model(load_model(args.nn, device)[0], device, compiled) if todo else None
    scoring = 0.0
    for name in todo:
        pair, planned = plans[name]
        _, info, _ = main.score_pair(model, compiled, planned, pair, device)
        scoring += info["seconds"]
    for name, (pair, _) in plans.items():
        folder = main.run_folder(pair)
        rows[name] = (pair.magnitude, calMetric.run_metrics(
            folder, args.metrics, finished(folder)["num_classes"]), "")
    ordered = [(n, *rows[n]) for n in tested]
    return write_table(args.nn, ordered, args.metrics), scoring, len(todo)


def main_cli(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nn", default="densenet10", metavar="MODEL",
                        help="model name, as for main.py (default densenet10)")
    parser.add_argument("--force", action="store_true", help="score finished pairs again")
    main.add_run_flags(parser)
    args = parser.parse_args(argv)
    # per-pair settings, filled in by run_table; these placeholders pass check_args
    args.out_dir, args.out_dataset, args.magnitude = None, "iSUN", 0.0
    return report_errors(lambda: report_table(args))


def report_table(args):
    started = time.time()
    table, scoring, pairs = run_table(args)
    wall = time.time() - started
    print(table)
    print(f"\n{pairs} pair(s) scored; wall {wall:.0f} s, of which scoring {scoring:.0f} s "
          f"(wall / scoring = {wall / max(scoring, 1e-9):.2f}). Written: results/{args.nn}.md, .csv")


if __name__ == "__main__":
    sys.exit(main_cli())
