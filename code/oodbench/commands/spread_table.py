"""How much a comparison depends on the network (layer 6: the spread_table.py command).

Independent trainings of one architecture (the three DenseNet-BC-100s on CIFAR-10: ODIN's,
DICE's and Necas's) or one family (the four CIFAR ResNets, depth 20 to 56), each evaluated
by its own tables: per (detector, OOD set) the mean ± standard deviation over the networks,
each network's value beside it, and each detector's rank per network (by its mean over the
sets), so a reader sees whether an ordering holds across trainings. Reads the committed
tables, computes nothing new: a network's detector comparison
(results/detectors_<model>_tune<N>.csv, compare.py) where there is one, else its ODIN
table (results/<model>_tune<N>.csv, table.py: the baseline and ODIN rows), each with ODIN's
(T, eps) as that table chose them. Only the detectors and sets present for every network are
averaged; the others are listed. Writes results/spread_<group>_tune<N>.md and .csv and
figures/spread_<group>_tune<N>.png.

    python spread_table.py --group densenet-bc-100
    python spread_table.py --group cifar-resnets
    python spread_table.py --models densenet10 necas_densenet10 --name two-densenets
"""
import argparse
import csv
import time

from oodbench.commands import cli, table
from oodbench.core import files
from oodbench.core.paths import UserError, figures_dir, report_errors, results_dir, shown
from oodbench.datasets.image_sets import get_ood_set
from oodbench.networks.registry import get_spec
from oodbench.pipelines import tuning
from oodbench.reports import spread_report

GROUPS = {"densenet-bc-100": ("densenet10", "dice_densenet10", "necas_densenet10"),
          "cifar-resnets": ("resnet20", "resnet32", "resnet44", "resnet56")}
BASELINE, ODIN = "MSP (baseline)", "ODIN"      # compare.py's names of the ODIN table's rows


def read_table(model, tune_images):
    """(source file name, {(set, detector): {metric: percent}}) of one network: its detector
    comparison, else its ODIN table; a UserError naming the command when it has neither."""
    suffix = tuning.tune_suffix(tune_images)
    comparison = results_dir() / f"detectors_{model}{suffix}.csv"
    odin_table = results_dir() / f"{model}{suffix}.csv"
    values = {}
    if comparison.is_file():
        for row in csv.DictReader(comparison.open(newline="")):
            if row["detector"]:
                values[row["ood_set"], row["detector"]] = _metrics(row)
        return comparison.name, values
    if odin_table.is_file():
        for row in csv.DictReader(odin_table.open(newline="")):
            if row["method"]:
                label = BASELINE if row["method"] == "Baseline" else ODIN
                values[row["ood_set"], label] = _metrics(row)
        return odin_table.name, values
    raise UserError(f"{model}: neither {shown(comparison)} nor {shown(odin_table)}: make one "
                    f"with python compare.py --nn {model} --tune-images {tune_images} (or "
                    f"table.py)")


def _metrics(row):
    return {m: float(row[m]) for m in spread_report.SHOWN}


def build_parser():
    parser = argparse.ArgumentParser(description=cli.description(__doc__),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--group", choices=sorted(GROUPS),
                       help="; ".join(f"{k}: {' '.join(v)}" for k, v in GROUPS.items()))
    which.add_argument("--models", nargs="+", metavar="NN",
                       help="the networks (at least two), each with its tables in results/")
    parser.add_argument("--name", help="the group's name in the file names (with --models)")
    parser.add_argument("--tune-images", type=cli.integer(1), default=200,
                        help="which tables: those tuned on this many held-out images a side "
                             "(default 200, the committed ones)")
    return parser


def report(args):
    started = time.time()
    models = list(GROUPS[args.group]) if args.group else args.models
    if len(models) < 2 or len(set(models)) < len(models):
        raise UserError("--models: give at least two different networks")
    for model in models:
        get_spec(model)
    group = args.group or args.name or "-".join(models)
    tables = {m: read_table(m, args.tune_images) for m in models}
    name = f"spread_{group}{tuning.tune_suffix(args.tune_images)}"
    spread = spread_report.Spread.of({m: values for m, (_, values) in tables.items()})
    if not spread.sets:
        raise UserError(f"{', '.join(models)}: no OOD set scored on every network")
    labels = {s: get_ood_set(s).label for s in spread.sets}
    specs = {m: get_spec(m).label for m in models}
    title = (f"The spread over {len(models)} networks ({group}: "
             + ", ".join(f"{m} ({specs[m]})" for m in models) + f"), each from its own tables "
             f"(tuned on {args.tune_images} held-out images a side): "
             + "; ".join(f"{m}: results/{source}" for m, (source, _) in tables.items()) + ".")
    title += (" ODIN's (T, eps) as each network's table chose them: " + "; ".join(
        f"{m} by '{table.default_settings(m)}'" for m in models) + " (table.py --settings).")
    text = spread_report.markdown(title, spread, labels)
    results_dir().mkdir(parents=True, exist_ok=True)
    files.write_text(results_dir() / f"{name}.md", text)
    spread_report.write_csv(results_dir() / f"{name}.csv", spread)
    picture = spread_report.figure(figures_dir() / f"{name}.png", spread, labels,
                                   f"{group}: AUROC per network, and the mean ± std")
    print(text)
    print(f"wall {time.time() - started:.0f} s. Written: {shown(results_dir() / name)}.md "
          f"(and .csv), {shown(picture)}")


def main(argv=None):
    args = build_parser().parse_args(argv)
    return report_errors(lambda: report(args))
