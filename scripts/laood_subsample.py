"""How LA-OOD's AUROC moves with the number of training images its One-Class SVMs are fitted
on (the subsample standing in for the paper's 50,000): one model, every OOD set here, the
same features (cached) for every size.

    python scripts/laood_subsample.py --nn densenet10 --sizes 1000 2000 5000 10000
"""
import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "code"))

from oodbench.commands import cli  # noqa: E402
from oodbench.commands import laood_table  # noqa: E402
from oodbench.commands import table  # noqa: E402
from oodbench.datasets.image_sets import OOD_SETS  # noqa: E402
from oodbench.pipelines import laood_runs  # noqa: E402
from oodbench.reports import laood_report  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_model_flag(parser)
    parser.add_argument("--sizes", nargs="+", type=int, default=[1000, 2000, 5000, 10000])
    cli.add_device_flags(parser)
    args = parser.parse_args()
    cli.resolve_model(args)
    sets = table.tested_sets() + list(laood_table.LAOOD_SETS)
    options = cli.scoring_options(args)
    aurocs, seconds = {}, {}
    for size in args.sizes:
        detector, results, _, timings = laood_runs.evaluate(args.nn, options, sets, size)
        seconds[size] = timings["fits"]
        for name, scores in results.items():
            ins, outs, _, _ = scores.laood()
            aurocs[name, size] = laood_report.both_conventions(ins, outs)[0]["AUROC"]
    ran = [s for s in sets if (s, args.sizes[0]) in aurocs]
    print(f"LA-OOD AUROC (%) of {args.nn} by training images per SVM")
    print("| OOD set | " + " | ".join(f"{n:,}" for n in args.sizes) + " |")
    print("|---|" + "---|" * len(args.sizes))
    for name in ran:
        print(f"| {OOD_SETS[name].label} | " + " | ".join(
            f"{100 * aurocs[name, n]:.1f}" for n in args.sizes) + " |")
    print("| fits (s, all layers) | " + " | ".join(f"{seconds[n]:.0f}" for n in args.sizes)
          + " |")


if __name__ == "__main__":
    started = time.time()
    main()
    print(f"wall {time.time() - started:.0f} s")
