"""The FSSD suite's tables (layer 6: the fssd_table.py command).

Reproduce the FSSD repository's benchmark: Fashion-MNIST (in) vs MNIST, LeNet, with Baseline,
ODIN, Mahalanobis, Deep Ensemble, MC Dropout, Outlier Exposure and FSSD, on LeNets trained
here (models/lenet), mean ± std over repetitions, the FSSD README's numbers beside ours;
then the same methods on the other OOD sets a Fashion-MNIST model can meet here.

    python code/fssd_table.py              # the default plan (bash scripts/reproduce_fssd.sh)
    python code/fssd_table.py --sets MNIST --reps 1 --methods Baseline FSSD

Every (repetition, method, set) result is kept in runs/fssd/ under a key of everything it
depends on, so a stopped run resumes and a finished one prints at once. Writes
results/fssd_fmnist.md and results/fssd_fmnist.csv.
"""
import argparse
import time

from oodbench.commands.cli import add_interval_flags, description, file_name, integer
from oodbench.core import files, shards
from oodbench.core.devices import pick_device
from oodbench.core.paths import UserError, report_errors, results_dir, shown
from oodbench.datasets import greysets
from oodbench.pipelines import fssd_protocol
from oodbench.reports import fssd_report


def parse_args(argv):
    parser = argparse.ArgumentParser(description=description(__doc__),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", nargs="+", default=list(greysets.OOD_SETS),
                        choices=list(greysets.OOD_SETS), help="OOD sets (default: all here)")
    parser.add_argument("--reps", nargs="+", type=int, default=list(fssd_protocol.REPETITIONS),
                        choices=fssd_protocol.REPETITIONS, help="repetitions for MNIST")
    parser.add_argument("--other-reps", nargs="+", type=int, default=[1],
                        choices=fssd_protocol.REPETITIONS,
                        help="repetitions for the sets other than MNIST (default: 1, for "
                             "CPU time; each repetition of the four costs about 19 min)")
    parser.add_argument("--methods", nargs="+", default=list(fssd_protocol.METHODS),
                        choices=fssd_protocol.METHODS)
    parser.add_argument("--max-images", type=integer(fssd_protocol.FIT + fssd_protocol.SELECT + 1),
                        help="only the first N images of each set (smoke runs; at least "
                             f"{fssd_protocol.FIT + fssd_protocol.SELECT + 1}: the split's "
                             "500 + 500 "
                             "and a test part)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:1 ...")
    parser.add_argument("--no-cache", action="store_true", help="recompute every result")
    parser.add_argument("--out-name", type=file_name,
                        help="results/<name>.md and .csv (default fssd_fmnist for the whole "
                             "protocol, with what a shorter run left out appended)")
    add_interval_flags(parser)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    return report_errors(lambda: run(args))


FULL_NAME = "fssd_fmnist"


def shortened(args):
    """[(name suffix, what it says)] of each way the run differs from the whole protocol (all
    sets, repetitions 1-3 for MNIST and 1 for the others, every method, every image)."""
    parts = []
    if args.max_images:
        parts.append((f"_n{args.max_images}", f"the first {args.max_images} images of each set"))
    if args.sets != list(greysets.OOD_SETS):
        parts.append(("_sets-" + "-".join(args.sets), "sets " + ", ".join(args.sets)))
    if args.reps != list(fssd_protocol.REPETITIONS):
        parts.append(("_reps" + "-".join(map(str, args.reps)),
                      "MNIST repetitions " + ", ".join(map(str, args.reps))))
    if args.other_reps != [1]:
        parts.append(("_otherreps" + "-".join(map(str, args.other_reps)),
                      "other sets' repetitions " + ", ".join(map(str, args.other_reps))))
    if args.methods != list(fssd_protocol.METHODS):
        parts.append(("_methods-" + "-".join(m.replace(" ", "").replace("(", "").replace(")", "")
                                             for m in args.methods),
                      "methods " + ", ".join(args.methods)))
    return parts


def table_name(args):
    """results/<name>: fssd_fmnist for the whole protocol, with a suffix per difference
    otherwise (or --out-name), so that a shorter run never replaces the whole table."""
    parts = shortened(args)
    if args.out_name is None:
        return FULL_NAME + "".join(suffix for suffix, _ in parts)
    if args.out_name == FULL_NAME and parts:
        raise UserError(f"--out-name {FULL_NAME} is the whole protocol's table; this run has "
                        f"{'; '.join(what for _, what in parts)}: leave --out-name out (the "
                        "name then says so) or choose another")
    return args.out_name


def run(args):
    name = table_name(args)
    files.check_writable(results_dir(), "results folder")
    if shards.launched():
        raise UserError("fssd_table.py runs in one process (its LeNets take minutes): run it "
                        "without torchrun")
    device = pick_device(-1, args.device)
    in_images = greysets.fashion_mnist()[0][:args.max_images]
    records, started = [], time.time()
    repetitions = {}   # one per repetition number, made when first needed: its scores serve
    for out_name in args.sets:   # every OOD set
        out_images = greysets.ood_set(out_name)[0][:args.max_images]
        for rep in (args.reps if out_name == "MNIST" else args.other_reps):
            def get_repetition(rep=rep):
                if rep not in repetitions:
                    repetitions[rep] = fssd_protocol.Repetition(rep, device)
                return repetitions[rep]
            for method in args.methods:
                record = fssd_protocol.cached_evaluate(get_repetition, rep, method, in_images,
                                                       out_name, out_images, device,
                                                       not args.no_cache)
                print(f"{out_name:12} rep {rep} {method:11} AUROC {100 * record['AUROC']:5.1f} "
                      f"AUPRC {100 * record['AUPRC']:5.1f} FPR80 "
                      f"{100 * record['FPR at TPR 80%']:5.1f}  chosen {record['chosen']} "
                      f"({record['seconds']} s)", flush=True)
                records.append(record)
    test_images = len(in_images) - fssd_protocol.FIT - fssd_protocol.SELECT
    resampled = fssd_report.record_intervals(records, args.resamples, args.bootstrap_seed)
    text = fssd_report.markdown(records, args.sets, greysets.OOD_SETS, test_images,
                                "; ".join(what for _, what in shortened(args)), resampled,
                                args.resamples)
    print("\n" + text)
    out = results_dir()
    for suffix, content in ((".md", text), (".csv", fssd_report.csv_text(records, resampled))):
        path = out / f"{name}{suffix}"
        if path.is_file() and path.read_text() != content:
            print(f"note: replacing {shown(path)}, which held other results (--out-name NAME "
                  "writes elsewhere)")
        files.write_text(path, content)
    print(f"wrote {shown(out / name)}.md and .csv ({time.time() - started:.0f} s)")
