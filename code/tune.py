"""Choosing T and eps by the paper's protocol, computed efficiently.

The paper tunes T in {1, 2, 5, ..., 1000} and eps in {0, 0.0002, ..., 0.004} on
1,000 held-out images of each side, by the lowest FPR at 95% TPR. Scoring
every (T, eps) pair from scratch costs 210 x (forward + backward + forward) per
image. But the gradient sign depends on T only, not on eps, and the clean
forward pass depends on neither, so per batch this module runs

  * one clean forward pass, keeping its graph;
  * per T, one backward pass to the input (a vector-Jacobian product with
    d CE(f/T, y) / d f = (softmax(f/T) - onehot(y)) / T, the graph retained);
  * per (T, eps > 0), one forward pass of the perturbed input (eps = 0 reuses
    the clean logits).

Ties in FPR95 are broken by the higher AUROC, then the smaller eps, then the
smaller T (the least perturbation that does as well).
"""
import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # so `python code/tune.py` works

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.utils.data import ConcatDataset, DataLoader, Subset  # noqa: E402
from tqdm import tqdm  # noqa: E402

import cache  # noqa: E402
import calData  # noqa: E402
import calMetric  # noqa: E402
import figures  # noqa: E402
import main as cli  # noqa: E402
import paths  # noqa: E402
import runtime  # noqa: E402
from datasets import cifar, ood_dataset, pixel_arrays  # noqa: E402
from models import load_model, sha256_of  # noqa: E402
from paths import UserError, report_errors  # noqa: E402

TEMPERATURES = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)
EPSILONS = tuple(round(0.0002 * i, 4) for i in range(21))


def grid_batch(model, inputs, temperatures, epsilons, std):
    """ODIN scores of a batch for every (T, eps): an array [len(T), len(eps), batch]."""
    inputs = inputs.detach().requires_grad_(True)
    logits = model(inputs)
    clean = logits.detach()
    onehot = F.one_hot(clean.argmax(1), clean.shape[1]).to(clean.dtype)
    scores = torch.empty(len(temperatures), len(epsilons), len(inputs))
    for ti, temperature in enumerate(temperatures):
        d_logits = (F.softmax(clean / temperature, 1) - onehot) / temperature
        (gradient,) = torch.autograd.grad(logits, inputs, grad_outputs=d_logits,
                                          retain_graph=ti < len(temperatures) - 1)
        step = torch.where(gradient >= 0, 1.0, -1.0) / std
        with torch.no_grad():
            for ei, epsilon in enumerate(epsilons):
                out = clean if epsilon == 0 else model(inputs.detach() - epsilon * step)
                scores[ti, ei] = F.softmax(out / temperature, 1).max(1).values.cpu()
    return scores.numpy()


def grid_scores(model, dataset, mean, std, device, temperatures=TEMPERATURES,
                epsilons=EPSILONS, batch_size=32, desc="tuning grid"):
    """[len(T), len(eps), len(dataset)] ODIN scores of a dataset, streamed in batches."""
    normalise, std_t = calData.normaliser(mean, std, device)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    parts = []
    with tqdm(total=len(dataset), desc=desc, unit="img", dynamic_ncols=True) as bar:
        for images, _ in loader:
            parts.append(grid_batch(model, normalise(images), temperatures, epsilons, std_t))
            bar.update(len(images))
    return np.concatenate(parts, axis=2)


def naive_grid_scores(model, dataset, mean, std, device, temperatures=TEMPERATURES,
                      epsilons=EPSILONS, batch_size=32):
    """The same grid with every (T, eps) scored from scratch (the reference for bench/tests)."""
    grid = [[calData.score_dataset(model, dataset, mean, std, t, e, device, batch_size,
                                   desc=f"T={t} eps={e}").odin for e in epsilons]
            for t in temperatures]
    return np.asarray(grid)


def fpr95_table(in_grid, out_grid):
    """FPR at 95% TPR and AUROC for every (T, eps) cell: two arrays [len(T), len(eps)]."""
    fpr = np.empty(in_grid.shape[:2])
    auroc = np.empty(in_grid.shape[:2])
    for ti in range(in_grid.shape[0]):
        for ei in range(in_grid.shape[1]):
            m = calMetric.exact_metrics(in_grid[ti, ei], out_grid[ti, ei])
            fpr[ti, ei], auroc[ti, ei] = m["FPR at TPR 95%"], m["AUROC"]
    return fpr, auroc


def choose(fpr, auroc, temperatures=TEMPERATURES, epsilons=EPSILONS):
    """(T, eps) with the lowest FPR95; ties: higher AUROC, smaller eps, smaller T."""
    cells = [(fpr[ti, ei], -auroc[ti, ei], epsilons[ei], temperatures[ti], ti, ei)
             for ti in range(len(temperatures)) for ei in range(len(epsilons))]
    best = min(cells)
    return best[3], best[2]


# ---- the command line: choose (T, eps) for one model by one of three protocols ----

MODES = {
    "paper": "the OOD set's own held-out images (the paper's protocol)",
    "transfer": "Tiny-ImageNet validation images resized (TIN_val), never a test set",
    "no-ood": "synthetic noise only: held-out Uniform and Gaussian images, half each",
}


def tuning_ood(mode, out_dataset, count, seed):
    """The held-out OOD images that ``mode`` tunes on (indices below ``count``), and its name."""
    if mode == "paper":
        return Subset(ood_dataset(out_dataset, seed), range(count)), out_dataset
    if mode == "transfer":
        return Subset(ood_dataset("TIN_val", seed), range(count)), "TIN_val"
    half = count // 2
    return ConcatDataset([Subset(ood_dataset("Uniform", seed), range(half)),
                          Subset(ood_dataset("Gaussian", seed), range(count - half))]), "noise"


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nn", default="densenet10", metavar="MODEL")
    parser.add_argument("--out_dataset", default="iSUN", metavar="SET",
                        help="the OOD set (used by --mode paper only)")
    parser.add_argument("--mode", choices=MODES, default="paper",
                        help="; ".join(f"{k}: {v}" for k, v in MODES.items()))
    parser.add_argument("--tune-images", type=int, default=1000,
                        help="held-out images per side, from index 0 (default 1000, the paper's)")
    for flag, default in (("--gpu", 0), ("--batch-size", 32), ("--seed", 0)):
        parser.add_argument(flag, type=int, default=default)
    parser.add_argument("--device")
    return parser


def tune_model(args):
    """Compute (or reuse) both grids, choose (T, eps), write the record and the heat map."""
    if not 1 <= args.tune_images <= 1000:
        raise UserError("--tune-images must be in 1..1000 (the held-out images)")
    device = cli.pick_device(args.gpu, args.device)
    runtime.configure_allocator()
    model, spec = load_model(args.nn, device)
    model = runtime.prepare_model(model, device)
    ind = cifar(spec.in_dataset)
    ood, ood_name = tuning_ood(args.mode, args.out_dataset, args.tune_images, args.seed)

    common = dict(model=model, mean=spec.mean, std=spec.std, device=device,
                  batch_size=args.batch_size)
    base_key = dict(model=sha256_of(spec.path), count=args.tune_images, device=device.type,
                    temperatures=TEMPERATURES, epsilons=EPSILONS, seed=args.seed)
    in_key = cache.key_of(grid="in", data=cache.digest(*pixel_arrays(ind)), **base_key)
    in_grid = cache.cached_array(in_key, lambda: grid_scores(
        dataset=Subset(ind, range(args.tune_images)), desc=f"{spec.in_dataset} grid", **common))
    out_key = cache.key_of(grid="out", ood=ood_name, **base_key)
    out_grid = cache.cached_array(out_key, lambda: grid_scores(
        dataset=ood, desc=f"{ood_name} grid", **common))
    fpr, auroc = fpr95_table(in_grid, out_grid)
    temperature, epsilon = choose(fpr, auroc)
    ti, ei = TEMPERATURES.index(temperature), EPSILONS.index(epsilon)

    name = f"{args.nn}_{args.mode}_{ood_name}"
    out_dir = paths.ROOT / "results" / "tuning"
    out_dir.mkdir(parents=True, exist_ok=True)
    record = dict(nn=args.nn, mode=args.mode, tuned_on=ood_name, images_per_side=args.tune_images,
                  temperature=temperature, epsilon=epsilon, heldout_fpr95=float(fpr[ti, ei]),
                  heldout_auroc=float(auroc[ti, ei]), temperatures=TEMPERATURES,
                  epsilons=EPSILONS, fpr95=fpr.tolist(), auroc=auroc.tolist())
    (out_dir / f"{name}.json").write_text(json.dumps(record, indent=1) + "\n")
    figures.FIGURES_DIR.mkdir(exist_ok=True)
    figures.tuning_heatmap(fpr, TEMPERATURES, EPSILONS, (ti, ei),
                           f"{args.nn}: held-out FPR at 95% TPR, tuned on {ood_name} "
                           f"({args.tune_images} + {args.tune_images} images)",
                           figures.FIGURES_DIR / f"{name}_tuning.png")
    print(f"chosen T = {temperature}, eps = {epsilon}: held-out FPR95 "
          f"{100 * fpr[ti, ei]:.1f}%, AUROC {100 * auroc[ti, ei]:.1f}% "
          f"(results/tuning/{name}.json, figures/{name}_tuning.png)")
    target = args.out_dataset if args.mode == "paper" else "<any OOD set>"
    print(f"evaluate: python code/main.py --nn {args.nn} --out_dataset {target} "
          f"--temperature {temperature} --magnitude {epsilon}")


def main(argv=None):
    args = build_parser().parse_args(argv)
    return report_errors(lambda: tune_model(args))


if __name__ == "__main__":
    sys.exit(main())
