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
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm import tqdm

import calData
import calMetric

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
