"""Choosing T and eps by the paper's protocol, computed efficiently (layer 4; the command is
tune.py).

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
import json

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from oodbench.core import files, runtime
from oodbench.core.paths import UserError, results_dir
from oodbench.core.shards import by_leader, map_shards
from oodbench.datasets.image_sets import content_digest, ood_dataset, set_tag, test_set
from oodbench.networks.registry import get_spec, load_model, weights_sha256
from oodbench.pipelines.runs import HELD_OUT, check_input_gradient
from oodbench.scoring import cache, odin_scoring
from oodbench.scoring.metrics import exact_metrics

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
    normalise, std_t = odin_scoring.normaliser(mean, std, device)
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
    grid = [[odin_scoring.score_dataset(model, dataset, mean, std, t, e, device, batch_size,
                                        desc=f"T={t} eps={e}").odin for e in epsilons]
            for t in temperatures]
    return np.asarray(grid)


def fpr95_table(in_grid, out_grid):
    """FPR at 95% TPR and AUROC for every (T, eps) cell: two arrays [len(T), len(eps)]."""
    fpr = np.empty(in_grid.shape[:2])
    auroc = np.empty(in_grid.shape[:2])
    for ti in range(in_grid.shape[0]):
        for ei in range(in_grid.shape[1]):
            m = exact_metrics(in_grid[ti, ei], out_grid[ti, ei])
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
DEFAULT_TUNE_IMAGES = HELD_OUT
TRANSFER_SET = "TIN_val"
GRID_BLOCK = 200    # grids are cached per block of this many held-out images, so the paper's
#                     1,000 reuse the first 200 that a --tune-images 200 table computed


def tune_suffix(count):
    """_tune<N> where tuning read fewer (or more) held-out images than the paper's 1,000: ends
    the names of tables whose (T, eps) were tuned so, beside range_suffix."""
    return "" if count == DEFAULT_TUNE_IMAGES else f"_tune{count}"


def records_dir():
    return results_dir() / "tuning"


def tuning_sets(mode, out_dataset, count, validation=TRANSFER_SET):
    """The tuning set's name and [(OOD set, images used from index 0)] for ``mode``;
    ``validation``: the transfer mode's set (TIN_val, or the user's)."""
    if mode == "paper":
        return out_dataset, [(out_dataset, count)]
    if mode == "transfer":
        return validation, [(validation, count)]
    return "noise", [("Uniform", count // 2), ("Gaussian", count - count // 2)]


class Tuner:
    """The tuning grids of one model, each computed once and kept in the cache.

    A grid covers the first ``count`` images of a set (the held-out images every
    evaluation skips); the model is loaded only when a grid has to be computed.
    """

    def __init__(self, nn, count=DEFAULT_TUNE_IMAGES, device="cpu", batch_size=32, seed=0,
                 validation=TRANSFER_SET):
        if not 1 <= count <= HELD_OUT:
            raise UserError(f"--tune-images must be in 1..{HELD_OUT} (the held-out images)")
        self.nn, self.spec, self.count = nn, get_spec(nn), count
        self.device, self.batch_size, self.seed = torch.device(device), batch_size, seed
        self.weights = weights_sha256(nn)
        self.validation = validation or TRANSFER_SET    # the transfer mode's set
        self._model = None

    def model(self):
        if self._model is None:
            runtime.configure_allocator()
            model, spec = load_model(self.nn, self.device)
            if spec.exported:
                check_input_gradient(model, spec, self.device)
            self._model = runtime.prepare_model(model, self.device)
        return self._model

    def grid(self, ood=None):
        """[T, eps, count] ODIN scores of the in-distribution test set, or of OOD set ``ood``."""
        if ood is None:
            dataset = test_set(self.spec.in_dataset, self.spec.image_size)
            name = self.spec.in_dataset
        else:
            dataset, name = ood_dataset(ood, self.seed, self.spec.image_size), ood
        if len(dataset) < self.count:
            raise UserError(f"{name} has {len(dataset)} images, fewer than {self.count}")
        blocks = [range(start, min(start + GRID_BLOCK, self.count))
                  for start in range(0, self.count, GRID_BLOCK)]
        return np.concatenate([self.block_grid(dataset, name, block, len(blocks) > 1)
                               for block in blocks], axis=2)

    def block_grid(self, dataset, name, block, numbered):
        """The grid of the images ``block`` of ``dataset``, from the cache or computed."""
        key = cache.scoring_key(what="odin-grid", weights=self.weights,
                                images=content_digest(dataset, block), mean=self.spec.mean,
                                std=self.spec.std, device=self.device.type,
                                temperatures=TEMPERATURES, epsilons=EPSILONS)
        desc = f"{name} grid" + (f" {block.start}-{block.stop - 1}" if numbered else "")

        def compute(part):
            return grid_scores(self.model(), Subset(dataset, part), self.spec.mean,
                               self.spec.std, self.device, batch_size=self.batch_size,
                               desc=desc)
        return cache.cached_array(key, lambda: map_shards(
            compute, block, lambda parts: np.concatenate(parts, axis=2), desc, self.batch_size))

    def tune(self, mode, out_dataset=None):
        """Choose (T, eps) by ``mode``; write its record (results/tuning/<name>.json) and
        return it. The heat map is the caller's (figures.draw_tuning)."""
        if mode not in MODES:
            raise UserError(f"unknown tuning mode {mode!r}; choose from {', '.join(MODES)}")
        tuned_on, parts = tuning_sets(mode, out_dataset, self.count, self.validation)
        tuned_on = set_tag(tuned_on, self.spec.image_size)
        out_grid = np.concatenate([self.grid(name)[:, :, :used] for name, used in parts], axis=2)
        fpr, auroc = fpr95_table(self.grid(), out_grid)
        temperature, epsilon = choose(fpr, auroc)
        ti, ei = TEMPERATURES.index(temperature), EPSILONS.index(epsilon)
        record = dict(nn=self.nn, mode=mode, tuned_on=tuned_on, images_per_side=self.count,
                      temperature=temperature, epsilon=epsilon,
                      heldout_fpr95=float(fpr[ti, ei]), heldout_auroc=float(auroc[ti, ei]),
                      temperatures=TEMPERATURES, epsilons=EPSILONS,
                      fpr95=fpr.tolist(), auroc=auroc.tolist(),
                      **({"seed": self.seed} if self.seed else {}))   # the noise sets' seed
        write_record(record)
        return record


@by_leader
def write_record(record):
    """results/tuning/<record name>.json."""
    files.write_text(records_dir() / f"{record_name(record)}.json",
                     json.dumps(record, indent=1) + "\n")


def record_name(record):
    """<model>_<mode>_<tuning set>[_n<count>][_seed<S>]: the name of a record and its heat
    map (a record of another count or noise seed never replaces the default one)."""
    count = record["images_per_side"]
    return (f"{record['nn']}_{record['mode']}_{record['tuned_on']}"
            + ("" if count == DEFAULT_TUNE_IMAGES else f"_n{count}")
            + (f"_seed{record['seed']}" if record.get("seed") else ""))
