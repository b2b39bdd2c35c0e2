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
from oodbench.core import files
from oodbench.core.paths import UserError, report_errors, results_dir, shown
from oodbench.datasets.image_sets import get_ood_set, set_tag
from oodbench.detectors.laood import GAMMA_GRIDS, SUBSAMPLE
from oodbench.networks.registry import get_spec
from oodbench.pipelines import laood_runs, runs
from oodbench.reports import laood_report

LAOOD_SETS = ("TIN_lanczos", "PureColour")


def build_parser():
    parser = argparse.ArgumentParser(description=cli.description(__doc__),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_model_flag(parser)
    parser.add_argument("--sets", nargs="+", metavar="SET",
                        help="OOD sets (default: " + " ".join(
                            default_sets()) + ")")
    parser.add_argument("--subsample", type=cli.integer(100), default=SUBSAMPLE,
                        help=f"class-balanced training images the One-Class SVMs are fitted on "
                             f"(default {SUBSAMPLE}; the paper: all 50,000)")
    parser.add_argument("--gamma-grid", choices=tuple(GAMMA_GRIDS), default="narrow",
                        help="the gamma grid of the data shifting: narrow (default, "
                             f"{min(GAMMA_GRIDS['narrow'])}-{max(GAMMA_GRIDS['narrow'])}, as the "
                             "authors' runs) or wide (to "
                             f"{max(GAMMA_GRIDS['wide'])}, their code's DenseNet grid, which its "
                             "model-name test never reaches)")
    parser.add_argument("--max-images", type=cli.integer(1),
                        help="at most this many images a side")
    parser.add_argument("--skip", type=cli.integer(0), default=runs.HELD_OUT,
                        help=f"images held out at the start of each set (default "
                             f"{runs.HELD_OUT}, as every table)")
    cli.add_device_flags(parser)
    cli.add_seed_flag(parser)
    cli.add_interval_flags(parser)
    return parser


def default_sets():
    return table.tested_sets() + list(LAOOD_SETS)


def variant(args, sets):
    """What the table's name says of a run other than the default: _sub<N> for another
    --subsample, _seed<S> for other noise images, _widegamma for the wide gamma grid, _sets-A-B
    for other sets (--max-images adds _n<N>)."""
    return ((f"_sub{args.subsample}" if args.subsample != SUBSAMPLE else "")
            + (f"_seed{args.seed}" if args.seed else "")
            + ("" if args.gamma_grid == "narrow" else f"_{args.gamma_grid}gamma")
            + (f"_skip{args.skip}" if args.skip != runs.HELD_OUT else "")
            + ("" if sets == default_sets() else "_sets-" + "-".join(
                set_tag(s, get_spec(args.nn).image_size) for s in sets)))


def report(args):
    started = time.time()
    spec = get_spec(cli.resolve_model(args))
    sets = args.sets or default_sets()
    for name in sets:
        get_ood_set(name)               # an unknown name or a bad path: an error now
        set_tag(name, spec.image_size)
    files.check_writable(results_dir(), "results folder")
    options = cli.scoring_options(args)
    detector, results, why_not, timings = laood_runs.evaluate(
        args.nn, options, sets, args.subsample, args.seed, skip=args.skip,
        max_images=args.max_images,
        gamma_grid=args.gamma_grid)
    if not results:
        raise UserError("no OOD set could be scored: " + "; ".join(why_not.values()))
    rows, aurocs = laood_report.summarise(detector, results, args.resamples,
                                          args.bootstrap_seed)
    text = laood_report.write_tables(args.nn, spec, detector, rows, aurocs, why_not, timings,
                                     args.max_images, variant(args, sets))
    figures = laood_report.draw(args.nn, spec, detector, results, aurocs, args.max_images,
                                variant(args, sets))
    print(text)
    print(f"wall {time.time() - started:.0f} s. Written: results/"
          f"{laood_report.table_name(args.nn, args.max_images, variant(args, sets))}.md (.csv, "
          f"_layers.csv), " + ", ".join(shown(p) for p in figures))


def main(argv=None):
    args = build_parser().parse_args(argv)
    return report_errors(lambda: report(args))
