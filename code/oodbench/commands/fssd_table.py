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

from oodbench.commands.cli import description
from oodbench.core import shards
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
    parser.add_argument("--max-images", type=int,
                        help="only the first N images of each set (smoke runs; at least "
                             f"{fssd_protocol.FIT + fssd_protocol.SELECT + 1}: the split's "
                             "500 + 500 "
                             "and a test part)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:1 ...")
    parser.add_argument("--no-cache", action="store_true", help="recompute every result")
    parser.add_argument("--out-name", default="fssd_fmnist",
                        help="results/<name>.md and .csv (default fssd_fmnist)")
    args = parser.parse_args(argv)
    least = fssd_protocol.FIT + fssd_protocol.SELECT + 1
    if args.max_images is not None and args.max_images < least:
        parser.error(f"--max-images must be at least {least}")
    return args


def main(argv=None):
    args = parse_args(argv)
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
    text = fssd_report.markdown(records, args.sets, greysets.OOD_SETS)
    print("\n" + text)
    out = results_dir()
    out.mkdir(parents=True, exist_ok=True)
    for suffix, content in ((".md", text), (".csv", fssd_report.csv_text(records))):
        path = out / f"{args.out_name}{suffix}"
        if path.is_file() and path.read_text() != content:
            print(f"note: replacing {shown(path)}, which held other results (--out-name NAME "
                  "writes elsewhere)")
        path.write_text(content)
    print(f"wrote {shown(out / args.out_name)}.md and .csv ({time.time() - started:.0f} s)")
