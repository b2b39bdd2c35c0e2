"""ODIN: out-of-distribution detection by temperature scaling and input perturbation.

Scores the in-distribution test set (CIFAR-10 or CIFAR-100, by the model) and
an OOD set with the baseline (max softmax) and ODIN, writes the release's four
score files into a per-run folder, and prints the release's metric block.
As in the release, the first --skip (1,000) images of each set are held out
(for tuning) and both sides use the same number of images.

    python main.py --nn densenet10 --out_dataset iSUN --magnitude 0.0014 --temperature 1000 --gpu 0
"""
import argparse
import json
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # so `python code/main.py` works

import torch  # noqa: E402
from torch.utils.data import Subset  # noqa: E402
from tqdm import tqdm  # noqa: E402

import cache  # noqa: E402
import calData  # noqa: E402
import calMetric  # noqa: E402
import runtime  # noqa: E402
from datasets import OOD_SETS, cifar, get_ood_set, ood_dataset, pixel_arrays  # noqa: E402
from models import MODELS, get_spec, load_model, sha256_of  # noqa: E402
from paths import RUNS_DIR, UserError, report_errors  # noqa: E402


def build_parser():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nn", default="densenet10", metavar="MODEL",
                        help=f"model name: {', '.join(MODELS)} (default densenet10)")
    parser.add_argument("--out_dataset", default="Imagenet", metavar="SET",
                        help=f"OOD set: {', '.join(OOD_SETS)} (default Imagenet)")
    parser.add_argument("--magnitude", default=0.0014, type=float,
                        help="perturbation magnitude eps, in [0,1] pixel units (default 0.0014)")
    parser.add_argument("--temperature", default=1000, type=float,
                        help="temperature T > 0 (default 1000)")
    add_run_flags(parser)
    parser.add_argument("--out-dir", type=Path,
                        help="run folder for the score files (default: runs/<settings>)")
    parser.add_argument("--accuracy-only", action="store_true",
                        help="only report the classifier's accuracy on the whole "
                             "in-distribution test set, then stop")
    return parser


def add_run_flags(parser):
    """The flags main.py shares with table.py."""
    parser.add_argument("--gpu", default=0, type=int,
                        help="CUDA device index; -1 for the CPU. Without CUDA the CPU is used "
                             "(default 0)")
    parser.add_argument("--device", help="torch device, e.g. cpu, cuda, cuda:1 (overrides --gpu)")
    parser.add_argument("--batch-size", default=32, type=int,
                        help="images per batch; scores do not depend on it (default 32: "
                             "fastest on a 2-core CPU within 2 GB; larger batches suit GPUs)")
    parser.add_argument("--seed", default=0, type=int,
                        help="seed of the Uniform / Gaussian noise images (default 0)")
    parser.add_argument("--skip", default=1000, type=int,
                        help="images held out at the start of each set, as in the paper "
                             "(default 1000)")
    parser.add_argument("--max-images", type=int,
                        help="score at most this many images of each set (quick runs)")
    parser.add_argument("--metrics", choices=("exact", "paper"), default="exact",
                        help="exact threshold-free metrics (default) or the release's "
                             "100,000-threshold sweep")
    parser.add_argument("--compile", choices=("auto", "on", "off"), default="auto",
                        help="torch.compile the model: auto = on the CPU for runs of at least "
                             f"{runtime.COMPILE_MIN_IMAGES} images (default auto)")
    parser.add_argument("--no-cache", action="store_true",
                        help="recompute the in-distribution scores even when runs/.cache "
                             "holds them for these settings (and refresh the entry)")


def check_args(args):
    get_spec(args.nn)
    get_ood_set(args.out_dataset)
    if not math.isfinite(args.magnitude) or args.magnitude < 0:
        raise UserError(f"--magnitude must be a finite number >= 0, got {args.magnitude}")
    if not math.isfinite(args.temperature) or args.temperature <= 0:
        raise UserError(f"--temperature must be a finite number > 0, got {args.temperature}")
    if args.batch_size < 1:
        raise UserError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.skip < 0 or (args.max_images is not None and args.max_images < 1):
        raise UserError("--skip must be >= 0 and --max-images >= 1")
    if float(args.temperature).is_integer():
        args.temperature = int(args.temperature)  # written as 1000, like the release


def pick_device(gpu, device=None):
    """The torch device asked for; the CPU, said in one line, when CUDA is absent."""
    if device:
        try:
            chosen = torch.device(device)
        except RuntimeError as e:
            raise UserError(f"--device {device!r}: {e}") from None
        if chosen.type == "cpu":
            return chosen
        gpu = 0 if chosen.index is None else chosen.index
    if gpu < 0:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        print("CUDA is not available: running on the CPU.")
        return torch.device("cpu")
    if gpu >= torch.cuda.device_count():
        raise UserError(f"GPU {gpu} does not exist: this machine has "
                        f"{torch.cuda.device_count()} CUDA device(s)")
    return torch.device("cuda", gpu)


def run_folder(args):
    if args.out_dir:
        return args.out_dir
    name = f"{args.nn}_{args.out_dataset}_T{args.temperature}_eps{args.magnitude}"
    if get_ood_set(args.out_dataset).kind == "noise":
        name += f"_seed{args.seed}"
    if args.skip != 1000:
        name += f"_skip{args.skip}"
    if args.max_images:
        name += f"_n{args.max_images}"
    return RUNS_DIR / name


def accuracy(scores):
    return float((scores.predictions == scores.labels).mean())


def report_accuracy(args, device):
    model, spec = load_model(args.nn, device)
    model = runtime.prepare_model(model, device)
    dataset = cifar(spec.in_dataset)
    normalise, _ = calData.normaliser(spec.mean, spec.std, device)
    correct = 0
    loader = torch.utils.data.DataLoader(dataset, batch_size=max(args.batch_size, 256))
    with torch.inference_mode():
        for images, labels in tqdm(loader, desc="accuracy", unit="batch"):
            correct += (model(normalise(images)).argmax(1).cpu() == labels).sum().item()
    print(f"{args.nn} accuracy on all {len(dataset)} {spec.in_dataset} test images: "
          f"{100 * correct / len(dataset):.2f}%")


def in_distribution_key(spec, ind, args, device):
    """The cache key of the in-distribution scores: weights, images, T, eps, device type."""
    return cache.key_of(model=sha256_of(spec.path), data=cache.digest(*pixel_arrays(ind)),
                        mean=spec.mean, std=spec.std, temperature=args.temperature,
                        epsilon=args.magnitude, device=torch.device(device).type)


def in_distribution_scores(model, spec, ind, indices, args, device, common):
    """Scores of the in-distribution images, cached on disk across OOD sets."""
    key = in_distribution_key(spec, ind, args, device)

    def compute(wanted):
        return calData.score_dataset(model, Subset(ind, wanted), desc=spec.in_dataset, **common)
    scores, reused = cache.cached(key, indices, compute, refresh=args.no_cache)
    if reused:
        print(f"{spec.in_dataset} scores reused from runs/.cache/{key}.npz (--no-cache recomputes)")
    return scores


def plan(args):
    """(model spec, OOD spec, OOD dataset, in-distribution dataset, indices to score)."""
    spec, ood_spec = get_spec(args.nn), get_ood_set(args.out_dataset)
    ood = ood_dataset(args.out_dataset, args.seed)
    ind = cifar(spec.in_dataset)
    stop = min(len(ood), len(ind))
    if args.max_images:
        stop = min(stop, args.skip + args.max_images)
    if stop <= args.skip:
        raise UserError(f"nothing to score: {args.out_dataset} has {len(ood)} images and "
                        f"--skip is {args.skip}")
    return spec, ood_spec, ood, ind, range(args.skip, stop)


def score_pair(model, compiled, planned, args, device):
    """Score both sides of one run, write its folder; return (folder, run info, metrics)."""
    spec, ood_spec, ood, ind, indices = planned
    folder = run_folder(args)
    score_dir = folder / calMetric.SCORE_DIR
    if score_dir.exists() and any(score_dir.iterdir()):
        print(f"Note: replacing the score files of an earlier run in {score_dir}")
    print(f"{args.nn} on {device}: {len(indices)} {spec.in_dataset} and {len(indices)} "
          f"{args.out_dataset} images (indices {indices.start}..{indices.stop - 1}), "
          f"T={args.temperature}, eps={args.magnitude}")
    started = time.time()
    common = dict(mean=spec.mean, std=spec.std, temperature=args.temperature,
                  epsilon=args.magnitude, device=device, batch_size=args.batch_size,
                  static_shape=compiled)
    in_scores = in_distribution_scores(model, spec, ind, indices, args, device, common)
    out_scores = calData.score_dataset(model, Subset(ood, indices), desc=args.out_dataset, **common)
    elapsed = time.time() - started
    calData.write_scores(score_dir, args.temperature, args.magnitude, in_scores, out_scores)

    info = dict(nn=args.nn, architecture=spec.label, in_dataset=spec.in_dataset,
                num_classes=spec.num_classes, out_dataset=args.out_dataset,
                out_label=ood_spec.label, temperature=args.temperature, epsilon=args.magnitude,
                seed=args.seed, first_index=indices.start, images_per_side=len(indices),
                accuracy=accuracy(in_scores), device=str(device), seconds=round(elapsed, 1))
    (folder / "run.json").write_text(json.dumps(info, indent=2) + "\n")
    return folder, info, calMetric.run_metrics(folder, args.metrics, spec.num_classes)


def run(args):
    check_args(args)
    device = pick_device(args.gpu, args.device)
    runtime.configure_allocator()
    if args.accuracy_only:
        return report_accuracy(args, device)
    planned = plan(args)
    spec, ood_spec, indices = planned[0], planned[1], planned[4]
    compiled = runtime.should_compile(args.compile, device, 2 * len(indices))
    model = runtime.prepare_model(load_model(args.nn, device)[0], device, compiled)
    folder, info, result = score_pair(model, compiled, planned, args, device)
    print(calMetric.metric_block(result, spec.label, spec.in_dataset, ood_spec.label))
    print(f"\nClassifier accuracy on the {len(indices)} {spec.in_dataset} images scored: "
          f"{100 * info['accuracy']:.2f}%")
    print(f"Metrics: {args.metrics}. Scores in {folder / calMetric.SCORE_DIR} "
          f"({info['seconds']:.0f} s of scoring).")


def main(argv=None):
    args = build_parser().parse_args(argv)
    return report_errors(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
