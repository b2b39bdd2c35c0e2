"""LA-OOD's tables and figures for one model (layer 6: the laood_table.py command).

LA-OOD on one model against every OOD set here: results/laood_<model>.md and .csv (both
conventions), results/laood_<model>_layers.csv (each layer's AUROC alone) and the figures
figures/laood_<model>_layers.png and figures/laood_<model>_deciding.png (laood_<model>_n<N>*
with --max-images N, beside the comparison over the same images, detectors_<model>_n<N>).

The features of every convolution (and the logits) of the training set, the test set and
each OOD set are computed once and cached; each layer's One-Class SVM is fitted once per
subsample and cached; a second run reads both. Default sets: the ODIN tables' sets here and
LA-OOD's own (TIN_lanczos, PureColour).

    python laood_table.py --nn densenet10
    python laood_table.py --nn resnet56 --subsample 2000 --sets iSUN PureColour
"""
import argparse
import time

from oodbench.commands import cli, table
from oodbench.core.paths import UserError, report_errors, shown
from oodbench.datasets.image_sets import OOD_SETS
from oodbench.detectors.laood import SUBSAMPLE
from oodbench.networks.registry import get_spec
from oodbench.pipelines import laood_runs
from oodbench.reports import laood_report

LAOOD_SETS = ("TIN_lanczos", "PureColour")


def build_parser():
    parser = argparse.ArgumentParser(description=cli.description(__doc__),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_model_flag(parser)
    parser.add_argument("--sets", nargs="+", metavar="SET",
                        help="OOD sets (default: " + " ".join(
                            table.tested_sets() + list(LAOOD_SETS)) + ")")
    parser.add_argument("--subsample", type=int, default=SUBSAMPLE,
                        help=f"class-balanced training images the One-Class SVMs are fitted on "
                             f"(default {SUBSAMPLE}; the paper: all 50,000)")
    parser.add_argument("--max-images", type=int, help="at most this many images a side")
    cli.add_device_flags(parser)
    cli.add_seed_flag(parser)
    return parser


def report(args):
    started = time.time()
    spec = get_spec(args.nn)
    sets = args.sets or table.tested_sets() + list(LAOOD_SETS)
    unknown = [s for s in sets if s not in OOD_SETS]
    if unknown:
        raise UserError(f"--sets: unknown {', '.join(unknown)}; choose from "
                        f"{', '.join(OOD_SETS)}")
    if args.subsample < 100:
        raise UserError(f"--subsample must be at least 100, got {args.subsample}")
    options = cli.scoring_options(args)
    detector, results, why_not, timings = laood_runs.evaluate(
        args.nn, options, sets, args.subsample, args.seed, max_images=args.max_images)
    if not results:
        raise UserError("no OOD set could be scored: " + "; ".join(why_not.values()))
    rows, aurocs = laood_report.summarise(detector, results)
    text = laood_report.write_tables(args.nn, spec, detector, rows, aurocs, why_not, timings,
                                     args.max_images)
    figures = laood_report.draw(args.nn, spec, detector, results, aurocs, args.max_images)
    print(text)
    print(f"wall {time.time() - started:.0f} s. Written: results/"
          f"{laood_report.table_name(args.nn, args.max_images)}.md (.csv, "
          f"_layers.csv), " + ", ".join(shown(p) for p in figures))


def main(argv=None):
    args = build_parser().parse_args(argv)
    return report_errors(lambda: report(args))
