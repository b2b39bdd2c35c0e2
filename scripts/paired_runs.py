"""Two runs of one detector on the same images, compared pairwise: the paired bootstrap of
the difference in AUROC and FPR95 (the same resampled images for both) and DeLong's test for
AUROC. For two settings of ODIN, e.g. the (T, eps) tuned on 1,000 images against the one
tuned on 200, both evaluated on the test images from index 1,000:

    python scripts/paired_runs.py runs/densenet10_iSUN_T50_eps0.0008 \\
        runs/densenet10_iSUN_T1000_eps0.0008 [--method Our]

Differences are the first run's minus the second's, in points (%).
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "code"))

from oodbench.core.paths import UserError, report_errors  # noqa: E402
from oodbench.core.scorefiles import read_scores  # noqa: E402
from oodbench.scoring import intervals, paired_tests  # noqa: E402


def compare(first, second, method, resamples, seed):
    a, b = read_scores(first, method)[1:], read_scores(second, method)[1:]
    if (len(a[0]), len(a[1])) != (len(b[0]), len(b[1])):
        raise UserError(f"{first} scores {len(a[0])} + {len(a[1])} images and {second} "
                        f"{len(b[0])} + {len(b[1])}: a paired comparison needs the same images")
    differences = paired_tests.paired_bootstrap(a, b, resamples, seed)
    _, error, p_delong = paired_tests.delong(a, b)
    print(f"{first} minus {second} ({method}; {len(a[0])} + {len(a[1])} images)")
    for name, d in differences.items():
        print(f"  {name:16} {100 * d.value:+7.2f}  95% [{100 * d.lower:+.2f}, "
              f"{100 * d.upper:+.2f}]  paired bootstrap p = {d.p:.3f}")
    print(f"  DeLong (AUROC)   standard error {100 * error:.3f}, p = {p_delong:.3g}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("first", help="a run folder")
    parser.add_argument("second", help="a run folder of the same images")
    parser.add_argument("--method", default="Our",
                        help="the score files' method (Our: ODIN, Base: the baseline, or a "
                             "detector's name; default Our)")
    parser.add_argument("--resamples", type=int, default=intervals.RESAMPLES)
    parser.add_argument("--bootstrap-seed", type=int, default=intervals.SEED)
    args = parser.parse_args(argv)
    return report_errors(lambda: compare(args.first, args.second, args.method,
                                         args.resamples, args.bootstrap_seed))


if __name__ == "__main__":
    sys.exit(main())
