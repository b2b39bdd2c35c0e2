"""The flags the commands share, defined once with their help (layer 6: commands).

The command-line flags the entry points share, each defined once with its help, and what
they turn into (used by main.py, table.py, tune.py, compare.py, laood_table.py). Parsed
arguments are read, never rewritten, with one exception: ``resolve_model`` writes into
``args.nn`` the name of the model that the model flags give (a registry name, or the name
a model from files is registered under), so that every command goes on with one name.
"""
import argparse
import math
from pathlib import Path

from oodbench import detectors
from oodbench.core import runtime, shards
from oodbench.core.devices import pick_device
from oodbench.core.paths import UserError
from oodbench.datasets.image_sets import OOD_SETS, get_ood_set, set_tag
from oodbench.networks import from_files
from oodbench.networks.registry import MODELS, get_spec
from oodbench.pipelines.runs import HELD_OUT, RunSettings, ScoringOptions
from oodbench.pipelines.tuning import DEFAULT_TUNE_IMAGES
from oodbench.scoring import intervals
from oodbench.scoring.metrics import MODES


SEED_LIMIT = 2 ** 32   # numpy's seeds: 0 <= seed < 2**32


def integer(least, most=None):
    """An argparse type: an int in [least, most]; anything else is refused while parsing
    (argparse's usage and one error line, exit 2), before any work."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < least or (most is not None and value > most):
            span = f"from {least} to {most}" if most is not None else f"at least {least}"
            raise argparse.ArgumentTypeError(f"must be {span}, got {value}")
        return value
    parse.__name__ = "integer"
    return parse


def finite_number(text, zero_allowed):
    """``text`` as a finite float > 0 (>= 0 when ``zero_allowed``), else ArgumentTypeError."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value < 0 or value == 0 and not zero_allowed:
        raise argparse.ArgumentTypeError(
            f"must be a finite number {'>=' if zero_allowed else '>'} 0, got {text}")
    return value


def positive_number(text):
    """An argparse type: a finite float > 0 (a learning rate, a scale)."""
    return finite_number(text, zero_allowed=False)


def non_negative_number(text):
    """An argparse type: a finite float >= 0 (a loss weight)."""
    return finite_number(text, zero_allowed=True)


def file_name(text):
    """An argparse type: a name for files under results/ (no folder, no '..')."""
    if not text or text in (".", "..") or "/" in text or "\\" in text or text.startswith("."):
        raise argparse.ArgumentTypeError(
            "must be a plain file name (no folder separators, not starting with '.'), got "
            f"{text!r}")
    return text


seed = integer(0, SEED_LIMIT - 1)


def description(doc):
    """A command's --help text: its module docstring less the first line, which names the
    module's job and layer for contributors (the rest is written for users)."""
    return doc.split("\n\n", 1)[1]


def add_metrics_flag(parser, modes=MODES):
    """--metrics, shared by every command that prints metrics (calMetric.py's too)."""
    parser.add_argument("--metrics", choices=modes, default="exact",
                        help="; ".join(f"{k}: {v}" for k, v in modes.items()) + " (default exact)")


def add_interval_flags(parser):
    """--resamples and --bootstrap-seed: the bootstrap of every table's intervals and paired
    tests (scoring/intervals.py, reports/uncertainty.py)."""
    parser.add_argument("--resamples", type=integer(intervals.MIN_RESAMPLES),
                        default=intervals.RESAMPLES, metavar="B",
                        help="bootstrap resamples of the images behind each 95%% interval and "
                             f"paired test (default {intervals.RESAMPLES:,}; at least "
                             f"{intervals.MIN_RESAMPLES})")
    parser.add_argument("--bootstrap-seed", type=integer(0), default=intervals.SEED,
                        metavar="S", help=f"seed of those resamples (default {intervals.SEED})")


# The flags of a model from files: given with --nn, each is an error.
FILE_MODEL_FLAGS = ("num_classes", "mean", "std", "image_size", "penultimate", "layers")


def add_model_flag(parser):
    """--nn, or a model from files (--arch with --weights, or --model), and the image sets it
    is tested and fitted on (--in-dataset, --train-dataset)."""
    group = parser.add_argument_group(
        "model", "a model of the registry (--nn), or your own: --arch ARCH --weights FILE, or "
                 "--model FILE.pt2 (docs/your-model.md)")
    group.add_argument("--nn", default=None, metavar="MODEL",
                       help=f"model name: {', '.join(MODELS)} (default densenet10)")
    group.add_argument("--arch", help="your model's architecture: one of the project's ("
                       f"{from_files.OWN_NAMES}) or a torchvision classification builder "
                       "(resnet18, densenet121, vit_b_16, ...); with --weights")
    group.add_argument("--weights", type=Path, metavar="FILE",
                       help="the --arch model's state_dict (plain, or under 'state_dict' or "
                            "'model'), read with torch.load(weights_only=True)")
    group.add_argument("--model", type=Path, metavar="FILE.pt2",
                       help="a program saved by torch.export.save (a dynamic batch dimension), "
                            "instead of --arch and --weights")
    group.add_argument("--num-classes", type=integer(2),
                       help="classes of your model (default 10)")
    group.add_argument("--mean", metavar="R,G,B", help="input normalisation mean, per channel "
                       "in [0, 1] pixel units (default ImageNet's 0.485,0.456,0.406)")
    group.add_argument("--std", metavar="R,G,B", help="input normalisation std (default "
                       "ImageNet's 0.229,0.224,0.225)")
    group.add_argument("--image-size", type=integer(8), metavar="S",
                       help="input height and width: images are resized to it (default 32 for "
                            "the project's architectures, 224 for torchvision's; an exported "
                            "program's own)")
    group.add_argument("--penultimate", metavar="MODULE",
                       help="the module whose input is the penultimate feature (default: the "
                            "model's last nn.Linear)")
    group.add_argument("--layers", metavar="M1,M2",
                       help="named_modules() names of the per-block layers Mahalanobis in full "
                            "and FSSD read (default: per architecture family)")
    group.add_argument("--in-dataset", metavar="SET",
                       help="the in-distribution test set: CIFAR-10, CIFAR-100, folder:PATH or "
                            "npz:PATH (default: the model's CIFAR set)")
    group.add_argument("--train-dataset", metavar="SET",
                       help="the set the fitted detectors (knn, vim, mahalanobis, ...) fit on: "
                            "folder:PATH or npz:PATH (default: the CIFAR training set)")


def model_flags(nn):
    """The flags that give model ``nn`` again: --nn NAME, or a model from files' own."""
    return get_spec(nn).command or f"--nn {nn}"


def resolve_model(args):
    """The name of the model the model flags give, written into ``args.nn`` (module
    docstring): a model from files is checked, probed and registered here, before any
    work. Called again, it changes nothing."""
    if getattr(args, "resolved_model", None) == args.nn and args.nn is not None:
        return args.nn
    own = getattr(args, "arch", None) is not None or getattr(args, "model", None) is not None
    if own:
        if args.nn is not None:
            raise UserError("give either --nn NAME or your own model (--arch/--weights or "
                            "--model), not both")
        spec = from_files.from_files(
            arch=args.arch, weights=args.weights, exported=args.model,
            num_classes=args.num_classes, mean=args.mean, std=args.std,
            image_size=args.image_size, penultimate=args.penultimate, layers=args.layers,
            in_dataset=args.in_dataset, train_dataset=args.train_dataset)
    else:
        given = [flag for flag in ("weights", *FILE_MODEL_FLAGS)
                 if getattr(args, flag, None) is not None]
        if given:
            raise UserError(f"{', '.join('--' + f.replace('_', '-') for f in given)}: only "
                            "for your own model (--arch ARCH --weights FILE, or --model)")
        spec = from_files.with_sets(get_spec(args.nn or "densenet10"),
                                    getattr(args, "in_dataset", None),
                                    getattr(args, "train_dataset", None))
    args.nn = args.resolved_model = spec.name
    return spec.name


def add_set_flag(parser, default, note=""):
    parser.add_argument("--out_dataset", default=default, metavar="SET",
                        help=f"OOD set{note}: {', '.join(OOD_SETS)}, or your own as "
                             f"folder:PATH or npz:PATH (default {default})")


def add_sets_flag(parser, what="every OOD set here"):
    parser.add_argument("--sets", nargs="+", metavar="SET",
                        help=f"the OOD sets (default: {what}); names or folder:PATH / npz:PATH")


def add_device_flags(parser, batch=True):
    """Where and in what batches to score: --gpu, --device, --batch-size (``batch``: the
    scoring batch flag; a training command defines its own)."""
    parser.add_argument("--gpu", default=0, type=integer(-1),
                        help="CUDA device index; -1 for the CPU. Without CUDA the CPU is used "
                             "(default 0)")
    parser.add_argument("--device", help="torch device, e.g. cpu, cuda, cuda:1 (overrides --gpu)")
    if not batch:
        return
    parser.add_argument("--batch-size", default=32, type=integer(1),
                        help="images per batch; scores do not depend on it (default 32: "
                             "fastest on a 2-core CPU within 2 GB; larger batches suit GPUs)")


def add_seed_flag(parser):
    parser.add_argument("--seed", default=0, type=seed,
                        help=f"seed of the Uniform / Gaussian noise images, 0 to {SEED_LIMIT - 1} "
                             "(default 0)")


def add_evaluation_flags(parser):
    """Which images a run scores and how: --skip, --max-images, --metrics, --compile, --no-cache."""
    parser.add_argument("--skip", default=HELD_OUT, type=integer(0),
                        help=f"images held out at the start of each set, as in the paper "
                             f"(default {HELD_OUT})")
    parser.add_argument("--max-images", type=integer(1),
                        help="score at most this many images of each set (quick runs)")
    add_metrics_flag(parser)
    parser.add_argument("--compile", choices=("auto", "on", "off"), default="auto",
                        help="torch.compile the model: auto = on the CPU for runs of at least "
                             f"{runtime.COMPILE_MIN_IMAGES} images (default auto)")
    parser.add_argument("--no-cache", action="store_true",
                        help="recompute the in-distribution scores (and a detector's features) "
                             "even when the cache (runs/.cache) holds them, and refresh the entry")


def check_tuning_images(args):
    """--tune-images within the held-out images: tuning reads indices 0 .. N - 1 of each set
    and evaluation starts at --skip, so N may be at most --skip (and the held-out
    split's 1,000); a UserError before any work otherwise."""
    most = min(args.skip, HELD_OUT)
    if most < 1:
        raise UserError(f"--skip {args.skip} leaves no held-out images to tune on")
    if not 1 <= args.tune_images <= most:
        raise UserError(f"--tune-images must be from 1 to {most}: the tuning images (indices "
                        f"0..N-1) must lie before the evaluated ones (from --skip {args.skip}) "
                        f"and in the held-out {HELD_OUT}; got {args.tune_images}")


def add_validation_flag(parser):
    parser.add_argument("--validation-set", metavar="SET",
                        help="the transfer mode's tuning set (default TIN_val): a set name, "
                             "folder:PATH or npz:PATH; its first --tune-images images are read")


def check_validation_set(args):
    """--validation-set, read now (a bad path or name is an error before any work); only the
    transfer mode reads it."""
    name = getattr(args, "validation_set", None)
    if name is None:
        return
    if getattr(args, "mode", "transfer") != "transfer":
        raise UserError(f"--validation-set is the transfer mode's tuning set; --mode "
                        f"{args.mode} does not read it")
    get_ood_set(name)
    set_tag(name, get_spec(args.nn).image_size)


def add_tuning_flags(parser):
    parser.add_argument("--tune-images", type=integer(1), default=DEFAULT_TUNE_IMAGES,
                        help="held-out images per side used for tuning, from index 0 (default "
                             f"{DEFAULT_TUNE_IMAGES}, the paper's; fewer is quicker and noisier)")


# Every hyper-parameter flag of a method: flag name (as a parameter) -> (type, help).
METHOD_FLAGS = {
    "temperature": (float, "T: odin's (default 1000) and energy's (default 1)"),
    "magnitude": (float, "odin's perturbation eps in [0,1] pixel units (default 0.0014)"),
    "k": (int, "knn: the k-th nearest training feature (default 50)"),
    "percentile": (float, "react: clipping percentile of training activations (default 90); "
                          "ash: pruning percentile (default 95)"),
    "gamma": (float, "gen: the entropy's gamma (default 0.1)"),
    "top_m": (int, "gen: the M largest probabilities summed (default 10)"),
    "dim": (int, "vim: principal subspace dimension (default: the paper's rule, half of a "
                 "width under 768)"),
    "subsample": (int, "laood: class-balanced training images its One-Class SVMs are fitted "
                       "on (default 5000; the paper: all 50,000)"),
    "gamma_grid": (str, "laood: the gamma grid of its data shifting, narrow (default: "
                        "0.001-0.1, as the authors' runs) or wide (to 1.0, their code's unreached "
                        "DenseNet grid)"),
}


def add_method_flags(parser):
    """--method and the hyper-parameter flags of every method (default: the paper's)."""
    listed = "; ".join(f"{name}: {d.paper}" for name, d in detectors.DETECTORS.items())
    parser.add_argument("--method", default="odin", metavar="NAME",
                        help=f"the detector (default odin). {listed}")
    group = parser.add_argument_group(
        "method parameters", "each applies to the methods named; default: the paper's value")
    for name, (kind, text) in METHOD_FLAGS.items():
        group.add_argument("--" + name.replace("_", "-"), dest=name, type=kind, help=text)


def method_params(args):
    """{parameter: value} of the method flags given on the command line."""
    return {name: getattr(args, name) for name in METHOD_FLAGS
            if getattr(args, name, None) is not None}


def add_batch_run_flags(parser):
    """The flags of a command that makes many runs of one model (table.py, compare.py)."""
    parser.add_argument("--force", action="store_true", help="score finished runs again")
    add_sets_flag(parser)
    add_validation_flag(parser)
    add_tuning_flags(parser)
    add_device_flags(parser)
    add_seed_flag(parser)
    add_evaluation_flags(parser)
    add_interval_flags(parser)


def scoring_options(args):
    """ScoringOptions from the device flags (and --compile / --no-cache where defined)."""
    shards.join()
    device = shards.agree(lambda: pick_device(args.gpu, args.device, shards.local_rank()))
    return ScoringOptions(device=device, batch_size=args.batch_size,
                          compile=getattr(args, "compile", "auto"),
                          use_cache=not getattr(args, "no_cache", False))


def run_settings(args, **overrides):
    """RunSettings from the run flags; ``overrides`` replace single values. An ODIN run takes
    T and eps from --temperature and --magnitude (the release's defaults where not given);
    another method takes every method flag given as its parameters, and refuses one it does
    not have."""
    resolve_model(args)
    method = getattr(args, "method", "odin")
    params = method_params(args)
    values = dict(nn=args.nn, out_dataset=getattr(args, "out_dataset", None), seed=args.seed,
                  skip=args.skip, max_images=args.max_images, method=method)
    if method == "odin":
        odin = detectors.make("odin", **params)
        values.update(temperature=odin.params["temperature"], epsilon=odin.params["magnitude"])
    else:
        values.update(temperature=None, epsilon=None, params=tuple(sorted(params.items())))
    values.update(overrides)
    return RunSettings(**values)
