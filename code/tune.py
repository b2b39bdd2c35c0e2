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
from torch.utils.data import DataLoader, Subset  # noqa: E402
from tqdm import tqdm  # noqa: E402

import cache  # noqa: E402
import calData  # noqa: E402
import calMetric  # noqa: E402
import figures  # noqa: E402
import main as cli  # noqa: E402
import paths  # noqa: E402
import runtime  # noqa: E402
from datasets import cifar, ood_dataset, pixel_arrays  # noqa: E402
from models import get_spec, load_model, weights_sha256  # noqa: E402
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


# ---- choosing (T, eps) for one model by one of three protocols ----

MODES = {
    "paper": "the OOD set's own held-out images (the paper's protocol)",
    "transfer": "Tiny-ImageNet validation images resized (TIN_val), never a test set",
    "no-ood": "synthetic noise only: held-out Uniform and Gaussian images, half each",
}
DEFAULT_TUNE_IMAGES = 1000
RECORDS_DIR = paths.ROOT / "results" / "tuning"


def tuning_sets(mode, out_dataset, count):
    """The tuning set's name and [(OOD set, images used from index 0)] for ``mode``."""
    if mode == "paper":
        return out_dataset, [(out_dataset, count)]
    if mode == "transfer":
        return "TIN_val", [("TIN_val", count)]
    return "noise", [("Uniform", count // 2), ("Gaussian", count - count // 2)]


class Tuner:
    """The tuning grids of one model, each computed once and kept in runs/.cache.

    A grid covers the first ``count`` images of a set (the images every evaluation
    skips); the model is loaded only when a grid has to be computed.
    """

    def __init__(self, nn, count=DEFAULT_TUNE_IMAGES, device="cpu", batch_size=32, seed=0):
        if not 1 <= count <= 1000:
            raise UserError("--tune-images must be in 1..1000 (the held-out images)")
        self.nn, self.spec, self.count = nn, get_spec(nn), count
        self.device, self.batch_size, self.seed = torch.device(device), batch_size, seed
        self.key = dict(model=weights_sha256(nn), count=count, device=self.device.type,
                        temperatures=TEMPERATURES, epsilons=EPSILONS, seed=seed)
        self._model = None

    def model(self):
        if self._model is None:
            runtime.configure_allocator()
            model, _ = load_model(self.nn, self.device)
            self._model = runtime.prepare_model(model, self.device)
        return self._model

    def grid(self, ood=None):
        """[T, eps, count] ODIN scores of the in-distribution test set, or of OOD set ``ood``."""
        if ood is None:
            dataset, desc = cifar(self.spec.in_dataset), f"{self.spec.in_dataset} grid"
            key = cache.key_of(grid="in", data=cache.digest(*pixel_arrays(dataset)), **self.key)
        else:
            dataset, desc = ood_dataset(ood, self.seed), f"{ood} grid"
            key = cache.key_of(grid="out", ood=ood, **self.key)
        if len(dataset) < self.count:
            raise UserError(f"{desc[:-5]} has {len(dataset)} images, fewer than {self.count}")
        return cache.cached_array(key, lambda: grid_scores(
            self.model(), Subset(dataset, range(self.count)), self.spec.mean, self.spec.std,
            self.device, batch_size=self.batch_size, desc=desc))

    def tune(self, mode, out_dataset=None):
        """Choose (T, eps) by ``mode``; write its record and heat map; return the record."""
        if mode not in MODES:
            raise UserError(f"unknown tuning mode {mode!r}; choose from {', '.join(MODES)}")
        tuned_on, parts = tuning_sets(mode, out_dataset, self.count)
        out_grid = np.concatenate([self.grid(name)[:, :, :used] for name, used in parts], axis=2)
        fpr, auroc = fpr95_table(self.grid(), out_grid)
        temperature, epsilon = choose(fpr, auroc)
        ti, ei = TEMPERATURES.index(temperature), EPSILONS.index(epsilon)
        record = dict(nn=self.nn, mode=mode, tuned_on=tuned_on, images_per_side=self.count,
                      temperature=temperature, epsilon=epsilon,
                      heldout_fpr95=float(fpr[ti, ei]), heldout_auroc=float(auroc[ti, ei]),
                      temperatures=TEMPERATURES, epsilons=EPSILONS,
                      fpr95=fpr.tolist(), auroc=auroc.tolist())
        name = record_name(self.nn, mode, tuned_on, self.count)
        RECORDS_DIR.mkdir(parents=True, exist_ok=True)
        (RECORDS_DIR / f"{name}.json").write_text(json.dumps(record, indent=1) + "\n")
        figures.tuning_heatmap(fpr, TEMPERATURES, EPSILONS, (ti, ei),
                               f"{self.nn}: held-out FPR at 95% TPR, tuned on {tuned_on} "
                               f"({self.count} + {self.count} images)",
                               figures.figure_path(self.nn, f"tuning_{name}"))
        return record


def record_name(nn, mode, tuned_on, count):
    return f"{nn}_{mode}_{tuned_on}" + ("" if count == DEFAULT_TUNE_IMAGES else f"_n{count}")


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nn", default="densenet10", metavar="MODEL")
    parser.add_argument("--out_dataset", default="iSUN", metavar="SET",
                        help="the OOD set (used by --mode paper only)")
    parser.add_argument("--mode", choices=MODES, default="paper",
                        help="; ".join(f"{k}: {v}" for k, v in MODES.items()))
    add_tuning_flags(parser)
    for flag, default in (("--gpu", 0), ("--batch-size", 32), ("--seed", 0)):
        parser.add_argument(flag, type=int, default=default)
    parser.add_argument("--device")
    return parser


def add_tuning_flags(parser):
    parser.add_argument("--tune-images", type=int, default=DEFAULT_TUNE_IMAGES,
                        help="held-out images per side, from index 0 (default 1000, the "
                             "paper's; fewer is quicker and noisier)")


def tune_cli(args):
    device = cli.pick_device(args.gpu, args.device)
    tuner = Tuner(args.nn, args.tune_images, device, args.batch_size, args.seed)
    record = tuner.tune(args.mode, args.out_dataset)
    name = record_name(args.nn, args.mode, record["tuned_on"], args.tune_images)
    print(f"chosen T = {record['temperature']}, eps = {record['epsilon']}: held-out FPR95 "
          f"{100 * record['heldout_fpr95']:.1f}%, AUROC {100 * record['heldout_auroc']:.1f}% "
          f"(results/tuning/{name}.json, {figures.figure_path(args.nn, f'tuning_{name}')})")
    target = args.out_dataset if args.mode == "paper" else "<any OOD set>"
    print(f"evaluate: python code/main.py --nn {args.nn} --out_dataset {target} "
          f"--temperature {record['temperature']} --magnitude {record['epsilon']}")


def main(argv=None):
    args = build_parser().parse_args(argv)
    return report_errors(lambda: tune_cli(args))


if __name__ == "__main__":
    sys.exit(main())
