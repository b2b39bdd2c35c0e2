"""Train the FSSD suite's LeNets by the authors' recipe (layer 6: the train.py command).

Train the FSSD benchmark's LeNet on Fashion-MNIST, the authors' recipe (the PyTorch MNIST
example they adapted): Adadelta lr 1.0, StepLR gamma 0.7 each epoch, 14 epochs, batch 64,
Normalize((0.2860,), (0.3530,)), no augmentation.

    python code/train.py --seed 1 --out models/lenet/fmnist_lenet_seed1.pt
    python code/train.py --oe --init models/lenet/fmnist_lenet_seed1.pt --seed 1 \\
        --out models/lenet/fmnist_lenet_oe_seed1.pt

--oe fine-tunes a trained LeNet with Outlier Exposure (Hendrycks et al., ICLR 2019), the
recipe of the OE code's MNIST oe_tune.py: loss = CE(in) + 0.5 * CE(outliers, uniform),
one forward pass over the joined batch, twice as many outliers as in-distribution images
(64 + 128: the base recipe's batch; OE's own MNIST net used 50 + 100), SGD (Nesterov,
momentum 0.9, lr 0.01) on a per-step cosine schedule to 1e-6, 5 epochs.
The outliers are the Tiny-ImageNet *validation* images made grey 28x28 with random
horizontal flips (OE used 80 Million Tiny Images, which is gone), less the one image that the
Tiny-ImageNet test split holds too (val_6382 = test_9748): images of the outlier set that a
test set holds are left out, and a test set is refused as the outlier set.

Seeded: epoch e shuffles with a generator seeded (seed, e) and reseeds dropout the same way,
so a run stopped after any epoch resumes from ``<out>.partial`` to the same weights. Each
epoch appends a line to ``<out>.log`` and prints it. An existing --out is never replaced
without --force.
"""
import argparse
import json
import math
import time
from pathlib import Path

import torch
from torch.nn import functional as F
from tqdm import tqdm

from oodbench.commands.cli import SEED_LIMIT, description, integer, positive_number, seed
from oodbench.core import files
from oodbench.core.devices import pick_device
from oodbench.core.digests import file_digest
from oodbench.core.paths import UserError, report_errors, shown
from oodbench.datasets import greysets
from oodbench.networks.lenet import LeNet, load_state, normalise

OUTLIER_SETS = (greysets.OUTLIER_SET,)   # accepted as --outliers: no test set's images
RECIPES = {   # the defaults of each mode
    "plain": dict(epochs=14, lr=1.0, gamma=0.7, batch_size=64),
    "oe": dict(epochs=5, lr=0.01, gamma=None, batch_size=64, oe_lambda=0.5, oe_batch_size=128),
}


def parse_args(argv):
    parser = argparse.ArgumentParser(description=description(__doc__),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, type=Path, help="where the state_dict goes")
    parser.add_argument("--seed", type=seed, default=1,
                        help=f"0 to {SEED_LIMIT - 1}; the authors' script used 1 (default 1)")
    parser.add_argument("--oe", action="store_true", help="Outlier Exposure fine-tuning")
    parser.add_argument("--init", type=Path, help="--oe: the trained LeNet to fine-tune")
    parser.add_argument("--outliers", default=greysets.OUTLIER_SET, choices=OUTLIER_SETS,
                        help=f"--oe: the outlier set (default {greysets.OUTLIER_SET}; a test set "
                             "of the benchmark is never one)")
    parser.add_argument("--epochs", type=integer(1), help="default 14 (--oe: 5)")
    parser.add_argument("--lr", type=positive_number,
                        help="default 1.0 Adadelta (--oe: 0.01 SGD)")
    parser.add_argument("--max-steps", type=integer(1),
                        help="stop each epoch after this many steps "
                        "(tests and smoke runs)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:1 ...")
    parser.add_argument("--force", action="store_true", help="replace an existing --out")
    args = parser.parse_args(argv)
    if args.oe != (args.init is not None):
        parser.error("--oe needs --init (the LeNet to fine-tune), and --init needs --oe")
    return args


def recipe_of(args):
    recipe = dict(RECIPES["oe" if args.oe else "plain"], seed=args.seed, mode="oe" if args.oe
                  else "plain", max_steps=args.max_steps)
    for name in ("epochs", "lr"):
        if getattr(args, name) is not None:
            recipe[name] = getattr(args, name)
    if args.oe:
        if not args.init.is_file():
            raise UserError(f"--init {args.init}: no such file")
        recipe.update(init=str(args.init), init_sha256=file_digest(args.init, "sha256"),
                      outliers=args.outliers)
    return recipe


def make_optimiser(model, recipe, steps_per_epoch):
    if recipe["mode"] == "plain":
        optimiser = torch.optim.Adadelta(model.parameters(), lr=recipe["lr"])
        return optimiser, torch.optim.lr_scheduler.StepLR(optimiser, 1, gamma=recipe["gamma"])
    optimiser = torch.optim.SGD(model.parameters(), lr=recipe["lr"], momentum=0.9, nesterov=True)
    total = recipe["epochs"] * steps_per_epoch
    floor = 1e-6 / recipe["lr"]

    def cosine(step):
        return floor + (1 - floor) * 0.5 * (1 + math.cos(step / total * math.pi))
    return optimiser, torch.optim.lr_scheduler.LambdaLR(optimiser, cosine)


def resume(partial, recipe, model, optimiser, scheduler):
    """The first epoch still to train: 0, or the one after a matching ``partial``."""
    if not partial.exists():
        return 0
    try:
        saved = torch.load(partial, map_location="cpu", weights_only=True)
        saved_recipe = saved["recipe"]
        missing = {"epoch", "model", "optimiser", "scheduler"} - set(saved)
        if missing:
            raise KeyError(f"no {', '.join(sorted(missing))}")
    except Exception as e:  # a truncated or foreign file
        raise UserError(f"cannot resume from {shown(partial)} ({type(e).__name__}): delete it to "
                        "train from the start") from None
    if saved_recipe != recipe:
        differ = sorted(k for k in set(recipe) | set(saved_recipe)
                        if recipe.get(k) != saved_recipe.get(k))
        raise UserError(f"{shown(partial)} was made by another recipe (differs in "
                        f"{', '.join(differ)}): delete it, or train with its settings")
    try:
        model.load_state_dict(saved["model"])
        optimiser.load_state_dict(saved["optimiser"])
        scheduler.load_state_dict(saved["scheduler"])
    except (RuntimeError, ValueError, KeyError) as e:
        first = str(e).strip().splitlines()[0]
        raise UserError(f"{shown(partial)} does not fit this network or optimiser ({first}): "
                        "delete it to train from the start") from None
    print(f"resuming from {shown(partial)} after epoch {saved['epoch'] + 1}")
    return saved["epoch"] + 1


def save_atomic(obj, path):
    files.save_torch(obj, path)


def accuracy(model, images, labels, device):
    model.eval()
    with torch.inference_mode():
        hits = sum(int((model(normalise(images[i:i + 1000].to(device))).argmax(1).cpu()
                        == labels[i:i + 1000]).sum()) for i in range(0, len(images), 1000))
    return hits / len(images)


def outlier_batch(outliers, order, step, size, generator, device):
    """Outlier images for ``step``: the next ``size`` of ``order`` (cycled), randomly flipped."""
    picked = order[torch.arange(step * size, (step + 1) * size) % len(order)]
    batch = outliers[picked]
    flip = torch.rand(size, generator=generator) < 0.5
    batch[flip] = batch[flip].flip(-1)
    return normalise(batch.to(device))


def oe_loss(in_logits, labels, out_logits, oe_lambda):
    """Outlier Exposure's loss: cross-entropy on the in-distribution images plus lambda times
    the cross-entropy from the outliers' softmax to the uniform distribution, written as the
    OE code does: mean over outliers of logsumexp(z) - mean(z)."""
    to_uniform = (torch.logsumexp(out_logits, 1) - out_logits.mean(1)).mean()
    return F.cross_entropy(in_logits, labels) + oe_lambda * to_uniform


def train_epoch(model, data, recipe, epoch, optimiser, scheduler, device, outliers=None):
    images, labels = data
    generator = torch.Generator().manual_seed(recipe["seed"] * 1000 + epoch)
    torch.manual_seed(recipe["seed"] * 1000 + epoch)   # dropout
    order = torch.randperm(len(images), generator=generator)
    out_order = torch.randperm(len(outliers), generator=generator) if outliers is not None else None
    size = recipe["batch_size"]
    steps = math.ceil(len(images) / size)
    if recipe["max_steps"]:
        steps = min(steps, recipe["max_steps"])
    model.train()
    total = 0.0
    for step in tqdm(range(steps), desc=f"epoch {epoch + 1}", unit="step", leave=False):
        picked = order[step * size:(step + 1) * size]
        x, y = images[picked], labels[picked]
        if outliers is None:
            loss = F.cross_entropy(model(x), y)
        else:
            out = outlier_batch(outliers, out_order, step, recipe["oe_batch_size"], generator,
                                device)
            logits = model(torch.cat([x, out]))
            loss = oe_loss(logits[:len(x)], y, logits[len(x):], recipe["oe_lambda"])
        if not torch.isfinite(loss):
            raise UserError(f"epoch {epoch + 1}, step {step + 1}: the loss is {loss.item()}, "
                            "not finite: training stopped and nothing saved (a .partial keeps "
                            "the last finished epoch, if any); try a smaller --lr")
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if recipe["mode"] == "oe":
            scheduler.step()
        total += loss.item()
    if recipe["mode"] == "plain":
        scheduler.step()
    return total / steps


def main(argv=None):
    args = parse_args(argv)
    return report_errors(lambda: run(args))


def run(args):
    if args.out.exists() and not args.force:
        raise UserError(f"{shown(args.out)} exists: pass --force to replace it")
    files.check_writable(args.out.parent, "output folder")
    device = pick_device(-1, args.device)
    recipe = recipe_of(args)
    train_x, train_y = greysets.fashion_mnist(train=True)
    test_x, test_y = greysets.fashion_mnist()
    data = (normalise(train_x).to(device), torch.from_numpy(train_y).to(device))
    outliers = None
    if args.oe:
        outliers = greysets.outlier_images(args.outliers)
        model = load_state(args.init)
    else:
        torch.manual_seed(args.seed)
        model = LeNet()
    model.to(device)
    steps = math.ceil(len(train_x) / recipe["batch_size"])
    optimiser, scheduler = make_optimiser(model, recipe, steps)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    partial = args.out.with_name(args.out.name + ".partial")
    log = args.out.with_name(args.out.stem + ".log")
    first = resume(partial, recipe, model, optimiser, scheduler)
    if first == 0:
        files.write_text(log, json.dumps(dict(recipe=recipe, device=str(device))) + "\n")
    for epoch in range(first, recipe["epochs"]):
        started = time.time()
        loss = train_epoch(model, data, recipe, epoch, optimiser, scheduler, device, outliers)
        line = dict(epoch=epoch + 1, loss=round(loss, 5), lr=optimiser.param_groups[0]["lr"],
                    test_accuracy=accuracy(model, test_x, torch.from_numpy(test_y), device),
                    seconds=round(time.time() - started, 1))
        print(json.dumps(line), flush=True)
        files.write_text(log, log.read_text() + json.dumps(line) + "\n")
        save_atomic(dict(recipe=recipe, epoch=epoch, model=model.state_dict(),
                         optimiser=optimiser.state_dict(), scheduler=scheduler.state_dict()),
                    partial)
    save_atomic({k: v.cpu() for k, v in model.state_dict().items()}, args.out)
    partial.unlink(missing_ok=True)
    print(f"saved {shown(args.out)}")
