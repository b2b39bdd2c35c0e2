"""Choose T and eps for one model by the paper's protocol (layer 6: the tune.py command).

Choose T and eps for one model by the paper's protocol (code in pipelines/tuning.py).

The paper tunes T in {1, 2, 5, ..., 1000} and eps in {0, 0.0002, ..., 0.004} on
1,000 held-out images of each side, by the lowest FPR at 95% TPR; ties go to the
higher AUROC, then the smaller eps, then the smaller T. Three protocols (--mode):
paper (the OOD set's own held-out images), transfer (TIN_val, never tested),
no-ood (held-out noise only). Writes results/tuning/<name>.json and the heat map
figures/<model>/tuning_<name>.png; grids are cached and shared with table.py.

    python tune.py --nn densenet10 --out_dataset iSUN --mode paper
"""
import argparse

from oodbench.commands import cli
from oodbench.core.paths import report_errors, shown
from oodbench.pipelines import tuning
from oodbench.reports import figures


def build_parser():
    parser = argparse.ArgumentParser(description=cli.description(__doc__),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_model_flag(parser)
    cli.add_set_flag(parser, "iSUN", " to tune on (--mode paper only)")
    parser.add_argument("--mode", choices=tuning.MODES, default="paper",
                        help="; ".join(f"{k}: {v}" for k, v in tuning.MODES.items()))
    cli.add_tuning_flags(parser)
    cli.add_validation_flag(parser)
    cli.add_device_flags(parser)
    cli.add_seed_flag(parser)
    return parser


def tune(args):
    cli.resolve_model(args)
    cli.check_validation_set(args)
    options = cli.scoring_options(args)
    tuner = tuning.Tuner(args.nn, args.tune_images, options.device, options.batch_size,
                         args.seed, args.validation_set)
    record = tuner.tune(args.mode, args.out_dataset)
    name = tuning.record_name(record)
    heat_map = figures.draw_tuning(record, name)
    print(f"chosen T = {record['temperature']}, eps = {record['epsilon']}: held-out FPR95 "
          f"{100 * record['heldout_fpr95']:.1f}%, AUROC {100 * record['heldout_auroc']:.1f}% "
          f"({shown(tuning.records_dir() / f'{name}.json')}, {shown(heat_map)})")
    target = args.out_dataset if args.mode == "paper" else "<any OOD set>"
    print(f"evaluate: python code/main.py {cli.model_flags(args.nn)} --out_dataset {target} "
          f"--temperature {record['temperature']} --magnitude {record['epsilon']}")


def main(argv=None):
    args = build_parser().parse_args(argv)
    return report_errors(lambda: tune(args))
