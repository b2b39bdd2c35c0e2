"""ROC curves and in/out score histograms of run folders (layer 6: the figures.py command).

ROC curves and in/out score histograms of run folders:

    python figures.py ../runs/densenet10_iSUN_T1000_eps0.0014 [more run folders]

writes figures/<model>/<run>_roc.png and figures/<model>/<run>_hist.png.
"""
import argparse
from pathlib import Path

from oodbench.commands.cli import description
from oodbench.core.paths import report_errors
from oodbench.reports.figures import draw_runs


def main(argv=None):
    parser = argparse.ArgumentParser(description=description(__doc__),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", type=Path, help="run folders")
    args = parser.parse_args(argv)
    return report_errors(lambda: draw_runs(args.folders))
