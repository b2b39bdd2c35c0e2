"""The base of the per-layer detectors with input processing (layer 3: detectors).

Detectors that score each of a network's layers, with input processing, and combine the
layers by logistic regression: Mahalanobis in full (Lee et al. 2018) and FSSD (Huang et al.
2021). Both are written here for networks with ``layer_maps(x, upto)`` (the LeNet of the
FSSD benchmark, networks/lenet.py): the outputs of the first ``upto`` of its layers.

Input processing moves an image one step of size ``magnitude`` along a per-layer
direction; the directions come from one forward and one backward pass per layer and do
not depend on the magnitude, so each value of a magnitude grid costs one forward pass
per layer more.
Images are processed in batches of BATCH, as in the authors' code (FSSD's step is
standardised over the whole batch, so its scores depend on the batch's images).
"""
import numpy as np
import torch

from oodbench.core.paths import UserError

BATCH = 512


def require_layers(detector, model):
    """A clear error for a network that does not declare its layers."""
    if not callable(getattr(model, "layer_maps", None)):
        raise UserError(f"{detector.label} scores each layer of a network, and "
                        f"{type(model).__name__} declares none (it needs layer_maps(x, upto), "
                        "as lenet.LeNet has)")


class LayerwiseDetector:
    name = label = paper = ""
    magnitudes = ()           # the authors' grid, in their search order

    def layer_score(self, layer, output):
        """[N] score of one layer's output (differentiable)."""
        raise NotImplementedError

    def loss(self, layer, output):
        """The scalar whose input gradient gives ``layer``'s input-processing direction."""
        raise NotImplementedError

    def direction(self, gradient, std):
        """The step input processing takes for an input gradient of ``loss``."""
        raise NotImplementedError

    def gradients(self, model, inputs, chunk):
        """Per layer, the input gradient of ``loss`` for every image of ``inputs``, ``chunk``
        images at a time: one forward pass to the last layer, then one backward pass per
        layer (the authors run a forward pass per layer: the same values, 1.7x slower on a
        DenseNet). Each loss sums over images, so an image's gradient is its own whatever
        the chunk; a DenseNet's graph for a whole batch of 512 would not fit in memory."""
        parts = [[] for _ in range(self.layers)]
        for start in range(0, len(inputs), chunk):
            x = inputs[start:start + chunk].detach().requires_grad_(True)
            outputs = model.layer_maps(x, self.layers)
            for layer in range(self.layers):
                (gradient,) = torch.autograd.grad(self.loss(layer, outputs[layer]), x,
                                                  retain_graph=layer < self.layers - 1)
                parts[layer].append(gradient)
        return [torch.cat(p) for p in parts]

    def directions(self, model, inputs, std, chunk=None):
        """Per layer, the input-processing direction of every image of ``inputs`` (a batch:
        FSSD standardises its step over it)."""
        return [self.direction(gradient, std).detach()
                for gradient in self.gradients(model, inputs, chunk or len(inputs))]

    def scores(self, model, inputs, magnitude, directions):
        """[N, layers] layer scores of ``inputs`` moved ``magnitude`` along ``directions``."""
        columns = []
        with torch.no_grad():
            for layer in range(self.layers):
                x = inputs if magnitude == 0 else inputs + magnitude * directions[layer]
                columns.append(self.layer_score(layer, model.layer_maps(x, layer + 1)[layer]))
        return torch.stack(columns, dim=1).double().cpu().numpy()

    def grid_scores(self, model, inputs, std, magnitudes, chunk=None):
        """{magnitude: [N, layers] scores} for every magnitude, batch by batch; the passes
        run ``chunk`` images at a time (default a whole batch): on a CPU, 16 at a time is
        2.5x faster for a DenseNet than 512 (measured), and the scores are the same."""
        require_layers(self, model)
        parts = {m: [] for m in magnitudes}
        for start in range(0, len(inputs), BATCH):
            batch = inputs[start:start + BATCH]
            step = chunk or len(batch)
            directions = self.directions(model, batch, std, step) if any(magnitudes) else None
            for m in magnitudes:
                parts[m] += [self.scores(model, batch[i:i + step], m, directions and
                                         [d[i:i + step] for d in directions])
                             for i in range(0, len(batch), step)]
        return {m: np.concatenate(p) for m, p in parts.items()}
