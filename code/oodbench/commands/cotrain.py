"""LA-OOD's co-training, the method's optional last step (layer 6: the cotrain.py command).

Fine-tune a network against its own per-layer One-Class SVMs, the authors' co_train.py
(pipelines/cotraining.py says every detail): loss = cross-entropy - lambda / (2 L) * the sum
of the OCSVMs' decision values of the training images over L layers drawn per batch. The
OCSVMs are LA-OOD's fits of the network (taken from the cache, fitted first when missing).

Writes <out>/epoch<k>.pt for k = 1, 2, 3, 5 (state_dicts; the last epoch always) with
epoch<k>.json (sha256, the command, the model flags that load it, the recipe, the test
accuracy), SHA256SUMS and log.jsonl. Resumable: rerun the same command after a stop and it
goes on from the last finished epoch. A finished folder is never replaced without --force.

    python cotrain.py --nn resnet56 --lambda 0.001
    python cotrain.py --nn resnet56 --lambda 0      # the control: plain fine-tuning
    python laood_table.py --arch resnet56 --weights models/cotrained/... (the model flags
        it prints at the end, also epoch5.json's model_flags)

Then the co-trained network is a model like any other: every command takes the flags its
epoch<k>.json records (--arch ... --weights ...), and cotrain_table.py compares it with the
network it started from.
"""
import argparse
import shlex
import shutil
import sys
from dataclasses import asdict
from pathlib import Path

from oodbench.commands import cli
from oodbench.core import files
from oodbench.core.paths import UserError, models_dir, report_errors, shown
from oodbench.detectors.laood import GAMMA_GRIDS, SUBSAMPLE
from oodbench.networks import from_files
from oodbench.networks.registry import get_spec, weights_sha256
from oodbench.pipelines import cotraining
from oodbench.pipelines.cotraining import Recipe

COTRAINED = "cotrained"     # under models/


def build_parser():
    parser = argparse.ArgumentParser(description=cli.description(__doc__),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_model_flag(parser)
    parser.add_argument("--lambda", dest="lam", type=cli.non_negative_number, default=0.001,
                        help="weight of the OCSVM term (default 0.001, the authors'; 0: plain "
                             "fine-tuning, the control)")
    parser.add_argument("--epochs", type=cli.integer(1), default=5, help="default 5")
    parser.add_argument("--lr", type=cli.positive_number, default=0.001,
                        help="SGD learning rate (default 0.001; momentum 0.9, weight decay "
                             "1e-4)")
    parser.add_argument("--batch-size", type=cli.integer(1),
                        help="images per step (default 128; 64 for a DenseNet, as the authors)")
    parser.add_argument("--layers-per-step", type=cli.integer(1), default=10,
                        help="layers whose OCSVM term each step adds, drawn at random (default "
                             "10; every fitted layer when a network has fewer)")
    parser.add_argument("--subsample", type=cli.integer(100), default=SUBSAMPLE,
                        help=f"LA-OOD's fits: class-balanced training images (default "
                             f"{SUBSAMPLE}, as laood_table.py)")
    parser.add_argument("--gamma-grid", choices=tuple(GAMMA_GRIDS), default="narrow",
                        help="LA-OOD's gamma grid (default narrow, as laood_table.py)")
    parser.add_argument("--seed", type=cli.seed, default=0,
                        help="seed of the shuffles, augmentation and layer draws (default 0)")
    parser.add_argument("--out", type=Path,
                        help="the run's folder (default models/cotrained/<model>_lambda<L>"
                             "[_seed<S>])")
    parser.add_argument("--max-steps", type=cli.integer(1),
                        help="stop each epoch after this many steps (smoke runs and tests)")
    parser.add_argument("--force", action="store_true",
                        help="replace a finished run's folder")
    cli.add_device_flags(parser, batch=False)
    return parser


def default_out(args):
    seed = f"_seed{args.seed}" if args.seed else ""
    return models_dir() / COTRAINED / f"{args.nn}_lambda{args.lam:g}{seed}"


def recipe_of(args, spec):
    return Recipe(base=args.nn, base_sha256=weights_sha256(args.nn), lam=args.lam,
                  epochs=args.epochs, lr=args.lr,
                  batch_size=args.batch_size,
                  layers_per_step=args.layers_per_step, seed=args.seed,
                  subsample=args.subsample, gamma_grid=args.gamma_grid,
                  max_steps=args.max_steps)


def check_out(out, recipe, force):
    """A run in ``out`` that has written a checkpoint is kept unless --force; one stopped
    after an epoch resumes (partial.pt, this recipe's: checked when resuming); one stopped
    before its first epoch ended starts again."""
    if not out.exists() or (out / "partial.pt").exists() and not force:
        return
    if list(out.glob("epoch*.json")) and not force:
        done = " (finished)" if (out / f"epoch{recipe.epochs}.json").exists() else ""
        raise UserError(f"{shown(out)} holds a co-training run{done}: pass --force to "
                        "replace it, or give another --out")
    if any(out.iterdir()):
        print(f"note: {shown(out)}: " + ("replaced (--force)" if force else
                                         "a run stopped in its first epoch; starting again"))
    shutil.rmtree(out)


def run(args):
    spec = get_spec(cli.resolve_model(args))
    args.batch_size = args.batch_size or cotraining.default_batch_size(spec)
    if spec.exported:
        raise UserError(f"{spec.label}: an exported program cannot be fine-tuned here; give "
                        "its network as --arch ARCH --weights FILE")
    recipe = recipe_of(args, spec)
    out = args.out or default_out(args)
    check_out(out, recipe, args.force)
    files.check_writable(out.parent if not out.exists() else out, "output folder")
    options = cli.scoring_options(args)
    command = shlex.join(["python", "code/cotrain.py", *sys.argv[1:]])
    record = cotraining.cotrain(recipe, out, options, command,
                                lambda path: from_files.retrained_flags(spec, path))
    print(f"co-trained {spec.label} ({args.nn}) with lambda {recipe.lam}: test accuracy "
          f"{record['test_accuracy']}; written {shown(out)}/epoch{record['epoch']}.pt "
          f"(sha256 {record['sha256'][:16]}...). Use it with:\n  "
          + shlex.join(record["model_flags"]))
    return asdict(recipe)


def main(argv=None):
    args = build_parser().parse_args(argv)
    return report_errors(lambda: run(args))
