"""A run: plan, score both sides, write the run folder (layer 4: pipelines).

A run: one model against one OOD set at one (T, eps), planned, scored on both sides and
written as a run folder. main.py, table.py and every later comparison go through
here; nothing here parses arguments or prints metrics.

As in the release, both sides are scored from index ``skip`` (the first 1,000 images are
the held-out tuning split) to N - 1, N the smaller set's size, and the run folder holds
the release's four score files and ``run.json``.
"""
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm import tqdm

from oodbench import detectors
from oodbench.core import files, runtime, scorefiles
from oodbench.core.paths import UserError, cache_dir, runs_dir, shown
from oodbench.core.shards import by_leader, map_shards
from oodbench.datasets.image_sets import (OODSet, content_digest, get_ood_set, ood_dataset,
                                          set_tag, test_set)
from oodbench.networks.registry import ModelSpec, get_spec, load_model, weights_sha256
from oodbench.scoring import cache, odin_scoring

HELD_OUT = 1000   # images at the start of each set kept for tuning (the paper's split)


def check_image_range(skip, max_images):
    if skip < 0 or (max_images is not None and max_images < 1):
        raise UserError("--skip must be >= 0 and --max-images >= 1")


SHORT_NAMES = {"temperature": "T", "percentile": "p", "gamma_grid": "grid"}


def _short(value):
    """A parameter's value in a folder name: 1.0 as 1, None (the paper's rule) as auto."""
    if value is None:
        return "auto"
    if isinstance(value, str):
        return value
    return str(int(value)) if float(value).is_integer() else str(value)


@dataclass(frozen=True)
class RunSettings:
    """Everything that changes a run's scores, and so names its folder. Validated on
    creation; an integral T becomes an int, written as 1000 like the release.

    ``method`` 'odin' (the default) scores with ``temperature`` and ``epsilon`` and writes
    the baseline beside ODIN, as the release; any other detector takes its hyper-parameters
    from ``params`` ((name, value) pairs; the papers' defaults fill the rest) and has no
    temperature or epsilon of its own here (None)."""
    nn: str
    out_dataset: str
    temperature: float | None
    epsilon: float | None
    seed: int = 0                   # of the Uniform / Gaussian images
    skip: int = HELD_OUT
    max_images: int | None = None   # at most this many images a side
    method: str = "odin"
    params: tuple = ()

    def __post_init__(self):
        get_spec(self.nn)
        get_ood_set(self.out_dataset)
        check_image_range(self.skip, self.max_images)
        if self.method != "odin":
            detector = detectors.make(self.method, **dict(self.params))
            detector.check_classes(get_spec(self.nn).num_classes)
            object.__setattr__(self, "params", tuple(sorted(detector.params.items())))
            object.__setattr__(self, "temperature", None)
            object.__setattr__(self, "epsilon", None)
            return
        if self.params:
            raise UserError(f"odin takes --temperature and --magnitude, not "
                            f"{', '.join(name for name, _ in self.params)}")
        if not math.isfinite(self.epsilon) or self.epsilon < 0:
            raise UserError(f"--magnitude must be a finite number >= 0, got {self.epsilon}")
        if not math.isfinite(self.temperature) or self.temperature <= 0:
            raise UserError(f"--temperature must be a finite number > 0, got {self.temperature}")
        object.__setattr__(self, "temperature", scorefiles.canonical_temperature(self.temperature))
        object.__setattr__(self, "epsilon", float(self.epsilon))

    def detector(self):
        """The settings' detector, unfitted."""
        if self.method == "odin":
            return detectors.make("odin", temperature=self.temperature, magnitude=self.epsilon)
        return detectors.make(self.method, **dict(self.params))

    def folder_name(self):
        out = set_tag(self.out_dataset, get_spec(self.nn).image_size)
        if self.method == "odin":
            name = f"{self.nn}_{out}_T{self.temperature}_eps{self.epsilon}"
        else:
            name = f"{self.nn}_{out}_{self.method}" + "".join(
                f"_{SHORT_NAMES.get(key, key)}{_short(value)}" for key, value in self.params)
        return name + folder_suffix(self.out_dataset, self.seed, self.skip, self.max_images)


def folder_suffix(out_dataset, seed, skip, max_images):
    """The end of a run folder's name: the noise seed, and the image range where not the
    default."""
    seed_part = f"_seed{seed}" if get_ood_set(out_dataset).kind == "noise" else ""
    return seed_part + range_suffix(skip, max_images)


def range_suffix(skip, max_images):
    """_skip<S> and _n<N> where the image range is not the default: ends the names of run
    folders and of tables over many runs, so that a smaller run never replaces the whole."""
    return (f"_skip{skip}" if skip != HELD_OUT else "") + (f"_n{max_images}" if max_images
                                                           else "")


@dataclass(frozen=True)
class ScoringOptions:
    """How to score, which changes no score."""
    device: torch.device
    batch_size: int = 32
    compile: str = "auto"           # 'auto', 'on' or 'off' (runtime.should_compile)
    use_cache: bool = True          # reuse cached in-distribution scores

    def __post_init__(self):
        if self.batch_size < 1:
            raise UserError(f"--batch-size must be >= 1, got {self.batch_size}")


@dataclass(frozen=True)
class Plan:
    """A run ready to score: the settings, and what they resolve to."""
    settings: RunSettings
    spec: ModelSpec
    ood_set: OODSet
    ind: Dataset                    # the in-distribution test set
    ood: Dataset
    indices: range                  # the image indices scored on both sides
    folder: Path


def run_folder(settings):
    return runs_dir() / settings.folder_name()


@by_leader
def writable_folder(folder):
    """``folder``, once sure it can be created and written (files.check_writable): a
    UserError now, before any work, if not. Nothing is created: a run stopped before its end
    leaves no folder behind."""
    return files.check_writable(folder, "run folder")


def plan(settings, out_dir=None, force=False):
    """Resolve ``settings`` to datasets and indices, and check that the run folder can be
    written; a UserError if a set is not here, the folder cannot be written or it holds
    another run (unless ``force``: scorefiles.check_folder)."""
    spec, ood_set = get_spec(settings.nn), get_ood_set(settings.out_dataset)
    ood = ood_dataset(settings.out_dataset, settings.seed, spec.image_size)
    ind = test_set(spec.in_dataset, spec.image_size)
    indices = scored_range(ind, ood, settings.out_dataset, settings.skip, settings.max_images)
    folder = writable_folder(out_dir if out_dir else run_folder(settings))
    scorefiles.check_folder(folder, settings.folder_name(), force)
    return Plan(settings, spec, ood_set, ind, ood, indices, folder)


def ood_ranges(ind, names, seed, skip, max_images, size=32):
    """({name: (the OOD set, the image indices a run scores, its name with the noise seed)},
    {name: why it cannot run}) for the OOD sets ``names`` (at ``size`` x ``size``) against
    the test set ``ind``."""
    found, why_not = {}, {}
    for name in names:
        try:
            ood = ood_dataset(name, seed, size)
            indices = scored_range(ind, ood, name, skip, max_images)
        except UserError as e:
            why_not[name] = str(e)
            continue
        label = set_tag(name, size) + (f" seed {seed}" if get_ood_set(name).kind == "noise"
                                       else "")
        found[name] = ood, indices, label
    return found, why_not


def scored_range(ind, ood, out_dataset, skip, max_images):
    """The image indices a run scores on both sides: from ``skip`` to the smaller set's end,
    at most ``max_images`` of them."""
    stop = min(len(ood), len(ind))
    if max_images:
        stop = min(stop, skip + max_images)
    if stop <= skip:
        raise UserError(f"nothing to score: {out_dataset} has {len(ood)} images and "
                        f"--skip is {skip}")
    return range(skip, stop)


def finished(folder):
    """The run.json of a complete run folder whose files match it, else None."""
    return scorefiles.finished(folder)


def in_distribution_key(plan, device):
    """The cache key of a plan's in-distribution scores (see cache.scoring_key)."""
    spec, settings = plan.spec, plan.settings
    return cache.scoring_key(what="odin-scores", weights=weights_sha256(spec.name),
                             images=content_digest(plan.ind), mean=spec.mean, std=spec.std,
                             device=torch.device(device).type,
                             temperature=settings.temperature, epsilon=settings.epsilon)


def images_to_score(plans, options):
    """{plan's folder: images it will really score}, so that an overall ETA holds: its OOD
    side, and its in-distribution side unless an earlier plan or the cache has that (T, eps)."""
    work, seen = {}, set()
    for p in plans:
        setting = (p.settings.temperature, p.settings.epsilon)
        fresh = not options.use_cache or not (
            setting in seen or cache.covers(in_distribution_key(p, options.device), p.indices))
        seen.add(setting)
        work[p.folder] = len(p.indices) * (2 if fresh else 1)
    return work


def load_scorer(nn, options, images):
    """(model ready on the device, whether it is compiled) for scoring ``images`` images.
    A compiled model is compiled here, on one batch, so that no progress bar's ETA counts
    the compilation."""
    compiled = runtime.should_compile(options.compile, options.device, images)
    model, spec = load_model(nn, options.device)
    if spec.exported:
        check_input_gradient(model, spec, options.device)
    model = runtime.prepare_model(model, options.device, compiled)
    if compiled:
        print("Compiling the model (torch.compile): about 80 s the first time on this CPU, a "
              "few seconds once its cache (runs/.cache/inductor) is warm; --compile off skips it")
        started = time.time()
        normalise, std = odin_scoring.normaliser(spec.mean, spec.std, options.device)
        size = spec.image_size
        warm_up = torch.zeros(options.batch_size, 3, size, size, dtype=torch.uint8)
        odin_scoring.odin_batch(model, normalise(warm_up), 1000, 0.0014, std)
        print(f"Compiled in {time.time() - started:.0f} s")
    return model, compiled


def check_input_gradient(model, spec, device):
    """A UserError when an exported program gives no input gradient (exported under
    torch.no_grad, say): ODIN and the input-processing methods need one."""
    images = torch.zeros(1, 3, spec.image_size, spec.image_size, device=device,
                         requires_grad=True)
    try:
        with torch.enable_grad():
            (gradient,) = torch.autograd.grad(model(images).sum(), images)
    except RuntimeError as e:
        raise UserError(f"{spec.weights_file}: the exported program gives no input gradient "
                        f"({str(e).splitlines()[0]}), which ODIN and input processing need; "
                        "export it outside torch.no_grad(), or use a gradient-free detector "
                        "(--method msp, energy, knn, vim, ...)") from None
    if gradient is None:
        raise UserError(f"{spec.weights_file}: the exported program gives no input gradient")


def score_images(model, dataset, indices, desc, settings):
    """odin_scoring.score_dataset of ``dataset`` at ``indices``, each rank scoring its shard
    (whole batches) under torchrun (core/shards.py)."""
    return map_shards(lambda part: odin_scoring.score_dataset(model, Subset(dataset, part),
                                                              desc=desc, **settings),
                      indices, odin_scoring.Scores.join, f"{desc} scores", settings["batch_size"])


def score(model, compiled, plan, options):
    """Score both sides of ``plan``, write its run folder; return its run.json contents."""
    settings, spec = plan.settings, plan.spec
    if scorefiles.held_run(plan.folder, settings.folder_name()) is not None:
        print(f"Note: the run in {plan.folder} will be replaced when this one is written")
    print(f"{settings.nn} on {options.device}: {len(plan.indices)} {spec.in_dataset} and "
          f"{len(plan.indices)} {settings.out_dataset} images (indices {plan.indices.start}.."
          f"{plan.indices.stop - 1}), T={settings.temperature}, eps={settings.epsilon}")
    started = time.time()
    common = dict(mean=spec.mean, std=spec.std, temperature=settings.temperature,
                  epsilon=settings.epsilon, device=options.device,
                  batch_size=options.batch_size, static_shape=compiled)

    def score_in(wanted):
        return score_images(model, plan.ind, wanted, spec.in_dataset, common)
    key = in_distribution_key(plan, options.device)
    in_scores, reused = cache.cached(key, plan.indices, score_in, refresh=not options.use_cache)
    if reused:
        print(f"{spec.in_dataset} scores reused from {shown(cache_dir() / f'{key}.npz')} "
              "(--no-cache recomputes)")
    out_scores = score_images(model, plan.ood, plan.indices, settings.out_dataset, common)
    elapsed = time.time() - started
    info = dict(nn=settings.nn, architecture=spec.label, in_dataset=spec.in_dataset,
                num_classes=spec.num_classes, out_dataset=settings.out_dataset,
                out_label=plan.ood_set.label, temperature=settings.temperature,
                epsilon=settings.epsilon, seed=settings.seed, first_index=plan.indices.start,
                images_per_side=len(plan.indices),
                accuracy=accuracy(in_scores.predictions, in_scores.labels),
                device=str(options.device), seconds=round(elapsed, 1), **model_record(spec))
    scorefiles.write_run(plan.folder, settings.folder_name(), info, {
        ("Base", "In"): in_scores.baseline, ("Base", "Out"): out_scores.baseline,
        ("Our", "In"): in_scores.odin, ("Our", "Out"): out_scores.odin},
        settings.temperature, settings.epsilon)
    return info


def accuracy(predictions, labels):
    """The share of correct predictions, None when the images have no labels."""
    labels = np.asarray(labels)
    return float((predictions == labels).mean()) if (labels >= 0).all() else None


def model_record(spec):
    """What run.json records of a model from files: the flags that rebuild it."""
    return {"model_command": spec.command} if spec.command else {}


def test_set_accuracy(nn, options):
    """(correct, total) of the classifier on its whole in-distribution test set."""
    model, spec = load_model(nn, options.device)
    model = runtime.prepare_model(model, options.device)
    dataset = test_set(spec.in_dataset, spec.image_size)
    labels = getattr(dataset, "labels", None)
    if labels is not None and (np.asarray(labels) < 0).any():
        raise UserError(f"{spec.in_dataset} has images without a label: no accuracy to report")
    normalise, _ = odin_scoring.normaliser(spec.mean, spec.std, options.device)
    correct = 0
    loader = DataLoader(dataset, batch_size=max(options.batch_size, 256))
    with torch.inference_mode():
        for images, labels in tqdm(loader, desc="accuracy", unit="batch"):
            correct += (model(normalise(images)).argmax(1).cpu() == labels).sum().item()
    return correct, len(dataset)
