"""LA-OOD's step 7, co-training (layer 4: pipelines): fine-tune a network against its own
per-layer One-Class SVMs (Wang et al., PAKDD 2022; the authors' co_train.py).

Start from the trained network and LA-OOD's fitted per-layer OCSVMs (detectors/laood.py,
from the cache or fitted first, on the same class-balanced subsample) and keep the OCSVMs
fixed. Then, as the authors' code:

- SGD (lr 0.001, momentum 0.9, weight decay 1e-4), 5 epochs, batches of 128 (64 for a
  DenseNet), the CIFAR augmentation (horizontal flip, then a random 32x32 crop of the image
  padded by 4 black pixels), the last short batch kept;
- at the start of each epoch, in eval mode, the per-channel mean and std of every fitted
  layer's channel-mean (globally average-pooled) feature over the training set, augmented as
  for training (their statistics pass reads the training loader): features are standardised
  by these, not by the OCSVMs' own scaler;
- per batch, loss = CE - lambda / (2 L) * sum over L layers of sum over the batch of
  f_l(z) (losses/ocsvm.py: the OCSVM's decision value without its intercept), the L layers
  drawn at random per batch without replacement from every fitted layer (the convolutions
  and the logits). Their DenseNet branch draws from the ResNet-34's layer indices (a
  copy-paste slip); here every network draws from its own layers;
- checkpoints after epochs 1, 2, 3 and 5.

Seeded and resumable: epoch e's shuffle, augmentation and layer draws come from generators
seeded (seed, e, part), so a run stopped after any epoch resumes from ``partial.pt`` to the
same weights. The fine-tuned network is a model from files like any other
(from_files.retrained_flags): LA-OOD refits its OCSVMs on its new features.
"""
import json
import math
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from oodbench.core import files, runtime
from oodbench.core.digests import file_digest
from oodbench.core.paths import UserError, shown
from oodbench.datasets.image_sets import test_set
from oodbench.detectors.laood import LAOOD
from oodbench.losses.ocsvm import OCSVMTerm, standardised
from oodbench.networks.registry import get_spec, load_model
from oodbench.pipelines.feature_runs import FeatureScorer
from oodbench.scoring.features import pooled
from oodbench.scoring.odin_scoring import normaliser

LOGITS = "logits"     # LA-OOD's last layer: the network's output
PAD = 4
SAVE_EPOCHS = (1, 2, 3, 5)


@dataclass(frozen=True)
class Recipe:
    """Everything that changes the fine-tuned weights (a partial run resumes only under the
    same recipe)."""
    base: str                   # the model's name (registry, or a model from files')
    base_sha256: str
    lam: float                  # lambda: 0 is plain fine-tuning, the control
    epochs: int = 5
    lr: float = 0.001
    momentum: float = 0.9
    weight_decay: float = 1e-4
    batch_size: int = 128
    layers_per_step: int = 10
    seed: int = 0
    subsample: int = 5000       # LA-OOD's fits: class-balanced training images
    gamma_grid: str = "narrow"
    max_steps: int | None = None   # steps per epoch at most (smoke runs and tests)


def default_batch_size(spec):
    """The authors' batch: 64 for their DenseNet, 128 otherwise."""
    return 64 if spec.label.startswith("DenseNet") else 128


def seeded(seed, epoch, part):
    """An independent seed for one part (shuffle, statistics, layer draws) of one epoch."""
    return int(np.random.SeedSequence([seed, epoch, part]).generate_state(1, np.uint64)[0])


def laood_fits(nn, options, subsample, gamma_grid):
    """({layer: LayerFit}, {layer: why unfit}, training set): LA-OOD's fits of ``nn``, from
    the cache (fitted first when missing)."""
    scorer = FeatureScorer(nn, options)
    train = scorer.training_set("co-training")
    detector = LAOOD(subsample=subsample, gamma_grid=gamma_grid)
    detector.check(None, len(train))
    detector.fit(scorer.train_features("laood", layers="conv"), None)
    return detector.fits, detector.unfit, train


def batch_of(dataset, indices):
    """(uint8 images [n, 3, H, W], labels [n]) of ``dataset`` at ``indices``."""
    images = getattr(dataset, "images", None)
    if isinstance(images, torch.Tensor):
        return images[indices], torch.as_tensor(np.asarray(dataset.labels)[indices.numpy()])
    pairs = [dataset[int(i)] for i in indices]
    return (torch.stack([image for image, _ in pairs]),
            torch.tensor([label for _, label in pairs]))


def augment(images, generator, pad=PAD):
    """The CIFAR augmentation of a batch: each image flipped horizontally with probability
    1/2, then cropped back to its size at a random offset from its copy padded with ``pad``
    black pixels a side (torchvision's RandomHorizontalFlip, RandomCrop(size, pad))."""
    n, channels, height, width = images.shape
    flip = torch.rand(n, generator=generator) < 0.5
    images = torch.where(flip[:, None, None, None], images.flip(-1), images)
    padded = F.pad(images, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    rows = (dy[:, None] + torch.arange(height))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(width))[:, None, None, :]
    images_at = torch.arange(n)[:, None, None, None]
    channels_at = torch.arange(channels)[None, :, None, None]
    return padded[images_at, channels_at, rows, cols]


class Taps:
    """Forward hooks on the fitted convolutions: ``kept`` holds the pooled output of each
    layer in ``wanted`` for the last batch (differentiable when the pass is)."""

    def __init__(self, model, names):
        self.kept, self.wanted = {}, set(names)
        self.handles = [model.get_submodule(name).register_forward_hook(self.keeper(name))
                        for name in names if name != LOGITS]

    def keeper(self, name):
        def hook(module, inputs, output):
            if name in self.wanted:
                self.kept[name] = pooled(output)
        return hook

    def outputs(self, logits, names):
        return {name: logits if name == LOGITS else self.kept[name] for name in names}

    def close(self):
        for handle in self.handles:
            handle.remove()


class RunningMoments:
    """Per-channel mean and std over batches, in float64 (Chan et al.'s pairwise update)."""

    def __init__(self):
        self.count, self.mean, self.m2 = 0, 0.0, 0.0

    def add(self, values):
        values = values.detach().to(torch.float64)
        n, mean = len(values), values.mean(0)
        m2 = ((values - mean) ** 2).sum(0)
        total = self.count + n
        delta = mean - self.mean
        self.mean = self.mean + delta * n / total
        self.m2 = self.m2 + m2 + delta ** 2 * self.count * n / total
        self.count = total

    def scaler(self):
        """(mean, scale): StandardScaler's, a constant channel's scale 1."""
        std = torch.sqrt(self.m2 / self.count)
        return self.mean, torch.where(std > 0, std, torch.ones_like(std))


def channel_stats(model, taps, dataset, names, normalise, generator, batch_size, desc):
    """{layer: (mean, scale)} of the channel-mean features over ``dataset``, augmented, in
    eval mode."""
    model.eval()
    taps.wanted = set(names)
    moments = {name: RunningMoments() for name in names}
    with torch.no_grad():
        for start in tqdm(range(0, len(dataset), batch_size), desc=desc, unit="batch",
                          leave=False, dynamic_ncols=True):
            part = torch.arange(start, min(start + batch_size, len(dataset)))
            images, _ = batch_of(dataset, part)
            logits = model(normalise(augment(images, generator)))
            for name, values in taps.outputs(logits, names).items():
                moments[name].add(values)
    return {name: m.scaler() for name, m in moments.items()}


def svm_term(outputs, terms, stats):
    """1 / (2 L) sum over the L layers of ``outputs`` of sum over the batch of f_l(z)."""
    total = sum(terms[name](standardised(values, *stats[name])).sum()
                for name, values in outputs.items())
    return total / (2 * len(outputs))


def step_loss(model, taps, terms, stats, inputs, labels, drawn, lam):
    """(loss, cross-entropy, OCSVM term) of one batch; the term carries no gradient when
    lambda is 0, so that the step is exactly plain fine-tuning."""
    taps.wanted = set(drawn)
    logits = model(inputs)
    ce = F.cross_entropy(logits, labels)
    with torch.set_grad_enabled(lam > 0 and torch.is_grad_enabled()):
        term = svm_term(taps.outputs(logits, drawn), terms, stats)
    loss = ce - (lam * term).to(ce.dtype) if lam > 0 else ce
    return loss, ce, term


def draw_layers(rng, pool, count):
    return [pool[i] for i in sorted(rng.choice(len(pool), count, replace=False))]


def train_epoch(model, taps, terms, stats, train, recipe, epoch, optimiser, normalise, device):
    """One epoch of co-training: {'ce', 'svm'} means over its steps; a UserError (nothing
    saved) at a step whose loss is not finite."""
    generator = torch.Generator().manual_seed(seeded(recipe.seed, epoch, 0))
    rng = np.random.default_rng(seeded(recipe.seed, epoch, 2))
    torch.manual_seed(seeded(recipe.seed, epoch, 3))        # dropout, where a network has it
    order = torch.randperm(len(train), generator=generator)
    pool = list(terms)
    count = min(recipe.layers_per_step, len(pool))
    steps = math.ceil(len(train) / recipe.batch_size)
    steps = min(steps, recipe.max_steps or steps)
    model.train()
    sums = {"ce": 0.0, "svm": 0.0}
    bar = tqdm(range(steps), desc=f"epoch {epoch + 1}/{recipe.epochs}", unit="step",
               dynamic_ncols=True)
    for step in bar:
        picked = order[step * recipe.batch_size:(step + 1) * recipe.batch_size]
        images, labels = batch_of(train, picked)
        inputs = normalise(augment(images, generator))
        loss, ce, term = step_loss(model, taps, terms, stats, inputs, labels.to(device),
                                   draw_layers(rng, pool, count), recipe.lam)
        if not torch.isfinite(loss):
            raise UserError(f"epoch {epoch + 1}, step {step + 1}: the loss is not finite "
                            f"(cross-entropy {ce.item():.4g}, OCSVM term {term.item():.4g}): "
                            "co-training stopped, no checkpoint of this epoch written; try a "
                            "smaller --lambda or --lr")
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        sums["ce"] += ce.item()
        sums["svm"] += term.item()
        bar.set_postfix(ce=f"{sums['ce'] / (step + 1):.4f}",
                        svm=f"{sums['svm'] / (step + 1):.3f}",
                        minus_lambda_svm=f"{-recipe.lam * sums['svm'] / (step + 1):.4f}")
    return {name: value / steps for name, value in sums.items()}


def test_accuracy(model, dataset, normalise, batch_size=500):
    """The share of ``dataset``'s images classified right (eval mode), None if unlabelled."""
    model.eval()
    correct = 0
    with torch.inference_mode():
        for start in range(0, len(dataset), batch_size):
            part = torch.arange(start, min(start + batch_size, len(dataset)))
            images, labels = batch_of(dataset, part)
            if (labels < 0).any():
                return None
            correct += (model(normalise(images)).argmax(1).cpu() == labels).sum().item()
    return correct / len(dataset)


def trainable(nn, device):
    model, _ = load_model(nn, device)
    return runtime.prepare_model(model.requires_grad_(True), device)


def resume(partial, recipe, model, optimiser):
    """The first epoch still to train: 0, or the one after a matching ``partial``."""
    if not partial.exists():
        return 0
    try:
        saved = torch.load(partial, map_location="cpu", weights_only=True)
        saved_recipe = saved["recipe"]
        model.load_state_dict(saved["model"])
        optimiser.load_state_dict(saved["optimiser"])
    except Exception as e:      # a truncated or foreign file
        raise UserError(f"cannot resume from {shown(partial)} ({type(e).__name__}): delete it "
                        "to co-train from the start") from None
    if saved_recipe != asdict(recipe):
        differ = sorted(k for k in asdict(recipe) if asdict(recipe)[k] != saved_recipe.get(k))
        raise UserError(f"{shown(partial)} was made by another recipe (differs in "
                        f"{', '.join(differ)}): delete it, or co-train with its settings")
    print(f"resuming from {shown(partial)} after epoch {saved['epoch'] + 1}")
    return saved["epoch"] + 1


def checkpoint_record(path, recipe, epoch, accuracy, command, model_flags):
    return {"file": path.name, "sha256": file_digest(path, "sha256"), "epoch": epoch,
            "test_accuracy": accuracy, "command": command, "model_flags": model_flags,
            "recipe": asdict(recipe)}


def cotrain(recipe, out, options, command, flags_of, save_epochs=SAVE_EPOCHS):
    """Co-train ``recipe.base`` into the folder ``out``: epoch<k>.pt (state_dicts) with
    epoch<k>.json (sha256, command, model flags, recipe, test accuracy) for k in
    ``save_epochs`` and the last epoch, log.jsonl (one line per epoch, epoch 0 the base's
    accuracy), SHA256SUMS; partial.pt while it runs. ``flags_of(path)``: the model flags of a
    checkpoint. Returns the last epoch's record."""
    spec = get_spec(recipe.base)
    device = options.device
    runtime.configure_allocator()
    fits, unfit, train = laood_fits(recipe.base, options, recipe.subsample, recipe.gamma_grid)
    if unfit:
        print(f"note: co-training leaves out {len(unfit)} layer(s) LA-OOD could not fit: "
              + ", ".join(unfit))
    test = test_set(spec.in_dataset, spec.image_size)
    model = trainable(recipe.base, device)
    normalise, _ = normaliser(spec.mean, spec.std, device)
    terms = {name: OCSVMTerm(fit, device) for name, fit in fits.items()}
    optimiser = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                                weight_decay=recipe.weight_decay)
    out.mkdir(parents=True, exist_ok=True)
    partial, log = out / "partial.pt", out / "log.jsonl"
    first = resume(partial, recipe, model, optimiser)
    if first:       # a line of an epoch whose partial was not written before a stop: dropped
        kept = [line for line in log.read_text().splitlines()
                if json.loads(line)["epoch"] <= first]
        files.write_text(log, "".join(line + "\n" for line in kept))
    else:
        base = dict(epoch=0, test_accuracy=test_accuracy(model, test, normalise),
                    layers=len(terms), layers_per_step=min(recipe.layers_per_step, len(terms)),
                    support_vectors=[len(fit.support_vectors) for fit in fits.values()],
                    recipe=asdict(recipe), command=command, device=str(device))
        files.write_text(log, json.dumps(base) + "\n")
    taps = Taps(model, list(terms))
    record = None
    try:
        for epoch in range(first, recipe.epochs):
            started = time.time()
            stats_generator = torch.Generator().manual_seed(seeded(recipe.seed, epoch, 1))
            stats = channel_stats(model, taps, train, list(terms), normalise, stats_generator,
                                  max(recipe.batch_size, 256),
                                  f"epoch {epoch + 1}: feature statistics")
            losses = train_epoch(model, taps, terms, stats, train, recipe, epoch, optimiser,
                                 normalise, device)
            accuracy = test_accuracy(model, test, normalise)
            line = dict(epoch=epoch + 1, ce=round(losses["ce"], 5),
                        svm=round(losses["svm"], 5), test_accuracy=accuracy,
                        seconds=round(time.time() - started, 1))
            print(json.dumps(line), flush=True)
            files.write_text(log, log.read_text() + json.dumps(line) + "\n")
            if epoch + 1 in save_epochs or epoch + 1 == recipe.epochs:
                path = out / f"epoch{epoch + 1}.pt"
                files.save_torch({k: v.detach().cpu().contiguous()
                                  for k, v in model.state_dict().items()}, path)
                record = checkpoint_record(path, recipe, epoch + 1, accuracy, command,
                                           flags_of(path))
                files.write_text(out / f"epoch{epoch + 1}.json",
                                 json.dumps(record, indent=1) + "\n")
                sums = sorted(p for p in out.glob("epoch*.json"))
                files.write_text(out / "SHA256SUMS", "".join(
                    f"{json.loads(p.read_text())['sha256']}  {p.stem}.pt\n" for p in sums))
            files.save_torch(dict(recipe=asdict(recipe), epoch=epoch, model=model.state_dict(),
                                  optimiser=optimiser.state_dict()), partial)
    finally:
        taps.close()
    partial.unlink(missing_ok=True)
    if record is None:
        record = json.loads((out / f"epoch{recipe.epochs}.json").read_text())
    return record
