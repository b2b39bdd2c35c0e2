"""ODIN scoring: temperature scaling and gradient-sign input perturbation, batched (layer 3).

For each image x (in the model's normalised input space), as in the release
(../shared/SPEC-odin.md):

1. logits f(x); baseline score = max softmax(f(x)); prediction y = argmax f(x);
2. loss = cross-entropy of f(x)/T against y; g = d loss / d x;
3. x~ = x - eps * sign(g) / std, with sign(0) = +1 and std the normalisation std;
4. ODIN score = max softmax(f(x~) / T).

The model is in eval mode with frozen weights, so a batch gives each image the
score it gets alone: the loss is summed over the batch, which leaves every
image's input gradient exactly its own. Scores are written in the release's
format: four files ``confidence_{Base,Our}_{In,Out}.txt``, one ``T, eps, score``
line per image.
"""
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm import tqdm

from oodbench.core import scorefiles

# Part of every cache key of scores computed here: bump it when a change to this
# module's arithmetic changes what it computes, so that no stale score is served.
SCORING_VERSION = 2


@dataclass
class Scores:
    baseline: np.ndarray      # max softmax at T = 1, clean input
    odin: np.ndarray          # max softmax at T, perturbed input
    predictions: np.ndarray   # argmax of the clean logits
    labels: np.ndarray        # dataset labels (-1 where there are none)

    def __len__(self):
        return len(self.odin)

    def take(self, part):
        """The scores of the images in ``part`` (a slice)."""
        return Scores(self.baseline[part], self.odin[part], self.predictions[part],
                      self.labels[part])

    @staticmethod
    def join(parts):
        """The Scores of consecutive parts, one after the other."""
        return Scores(*(np.concatenate([getattr(p, field) for p in parts])
                        for field in ("baseline", "odin", "predictions", "labels")))


def gradient_sign(model, inputs, temperature):
    """(baseline scores, predictions, sign of the gradient of the ODIN loss) for a batch of
    normalised inputs; sign(0) = +1. The sign does not depend on eps: a grid over eps
    needs it once."""
    inputs = inputs.detach().requires_grad_(True)
    logits = model(inputs)
    baseline, predictions = F.softmax(logits.detach(), dim=1).max(dim=1)
    loss = F.cross_entropy(logits / temperature, predictions, reduction="sum")
    (gradient,) = torch.autograd.grad(loss, inputs)
    return baseline, predictions, torch.where(gradient >= 0, 1.0, -1.0)


def perturbed_msp(model, inputs, sign, epsilon, std, temperature):
    """ODIN scores: max softmax at T of x - eps * sign / std."""
    perturbed = inputs.detach() - epsilon * (sign / std)
    with torch.no_grad():
        return F.softmax(model(perturbed) / temperature, dim=1).max(dim=1).values


def odin_batch(model, inputs, temperature, epsilon, std):
    """Baseline scores, ODIN scores and predictions for a batch of normalised inputs."""
    baseline, predictions, sign = gradient_sign(model, inputs, temperature)
    return baseline, perturbed_msp(model, inputs, sign, epsilon, std, temperature), predictions


def normaliser(mean, std, device):
    mean = torch.tensor(mean, dtype=torch.float32, device=device).view(1, 3, 1, 1)
    std = torch.tensor(std, dtype=torch.float32, device=device).view(1, 3, 1, 1)

    def normalise(images):
        images = images.to(device, non_blocking=True)
        if images.dtype == torch.uint8:
            images = images.float().div_(255)
        return (images - mean) / std
    return normalise, std


def pad_to(images, size):
    """``images`` with zero images appended up to ``size`` (keeps a compiled graph's shape)."""
    missing = size - len(images)
    if missing <= 0:
        return images
    return torch.cat([images, images.new_zeros((missing,) + images.shape[1:])])


def score_dataset(model, dataset, mean, std, temperature, epsilon, device,
                  batch_size=32, desc="scoring", num_workers=0, static_shape=False):
    """ODIN-score every image of ``dataset``, streaming it in batches.

    ``static_shape`` pads the last batch to ``batch_size`` (images are scored
    independently, so padding changes no score) for a model compiled for one shape.
    """
    normalise, std_t = normaliser(mean, std, device)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        pin_memory=torch.device(device).type == "cuda")
    parts = []
    with tqdm(total=len(dataset), desc=desc, unit="img", dynamic_ncols=True) as bar:
        for images, labels in loader:
            count = len(images)
            if static_shape:
                images = pad_to(images, batch_size)
            base, odin, pred = odin_batch(model, normalise(images), temperature, epsilon, std_t)
            parts.append((base[:count].cpu().numpy(), odin[:count].cpu().numpy(),
                          pred[:count].cpu().numpy(), np.asarray(labels)))
            bar.update(count)
    if not parts:
        empty = np.zeros(0, dtype=np.float32)
        return Scores(empty, empty, empty.astype(np.int64), empty.astype(np.int64))
    return Scores(*(np.concatenate(column) for column in zip(*parts)))


def write_scores(folder, temperature, epsilon, in_scores, out_scores):
    """The release's four score files in ``folder``."""
    scorefiles.write_scores(folder, temperature, epsilon, {
        ("Base", "In"): in_scores.baseline, ("Base", "Out"): out_scores.baseline,
        ("Our", "In"): in_scores.odin, ("Our", "Out"): out_scores.odin})
