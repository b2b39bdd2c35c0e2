"""The calMetric.py command: the release's metric block of a run folder (layer 6: commands).

The release's metric block from a run folder's score files.

Reads the ``confidence_<Method>_{In,Out}.txt`` files of a run folder, or of a bare folder
holding them, and prints a column per method: Baseline vs "Our Method" (ODIN) for an ODIN
run, as the release, or the detector's name (Energy, KNN, ...): FPR at 95% TPR, detection
error, AUROC, AUPR-In and AUPR-Out, ``exact`` (default) or the release's ``paper`` sweep,
or the FSSD repository's AUROC, AUPRC and FPR at 80% TPR (``fssd``).

With --ci, the 95% bootstrap interval of each method's AUROC and FPR95 beneath (the images
of each side resampled, --resamples times, seeded), and the paired difference of the two
methods of an ODIN run (paired bootstrap; DeLong's test for AUROC).

    python calMetric.py RUN_DIR [--metrics paper]
    python calMetric.py RUN_DIR --ci [--resamples 2000]
"""
import argparse

from oodbench.commands.cli import add_interval_flags, add_metrics_flag, description, integer
from oodbench.core.paths import report_errors
from oodbench.reports.metric_block import print_metrics
from oodbench.scoring.metrics import ALL_MODES


def main(argv=None):
    parser = argparse.ArgumentParser(description=description(__doc__),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", help="a run folder (holding softmax_scores/) or a folder "
                        "of confidence_<Method>_{In,Out}.txt files")
    add_metrics_flag(parser, ALL_MODES)
    parser.add_argument("--num-classes", type=integer(2),
                        help="classes of the in-distribution set (picks the release's sweep "
                        "range in paper mode; read from run.json when there)")
    parser.add_argument("--ci", action="store_true",
                        help="also the 95%% bootstrap intervals of AUROC and FPR95 and the "
                             "paired difference of the run's two methods")
    add_interval_flags(parser)
    args = parser.parse_args(argv)
    return report_errors(lambda: print_metrics(
        args.folder, args.metrics, args.num_classes,
        args.resamples if args.ci else None, args.bootstrap_seed))
