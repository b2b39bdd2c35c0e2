"""Train a torchvision classifier on CIFAR-10 on the CPU: the "user's checkpoint" of the
worked example in docs/your-model.md (a plain, seeded recipe; nothing here is tuned).

Recipe: the torchvision builder ``--arch`` with 10 classes and no pre-trained weights,
SGD (momentum 0.9, Nesterov, weight decay 5e-4), lr 0.1 on a per-step cosine schedule to 0
over ``--epochs`` epochs, batch 128, random crop with 4 pixels of zero padding and
horizontal flips, inputs normalised by DICE's CIFAR-10 mean and std. Epoch e shuffles and
augments with a generator seeded (seed, e). The result is a plain state_dict, written whole
(an existing --out is refused without --force), with its sha256 and this command printed.

    python scripts/train_torchvision.py --arch resnet18 --epochs 3 --out runs/example/resnet18.pt
"""
import argparse
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torchvision
from torch.nn import functional as F
from tqdm import tqdm

from oodbench.core import files
from oodbench.core.digests import file_digest
from oodbench.core.paths import UserError, report_errors
from oodbench.datasets.image_sets import cifar
from oodbench.networks.registry import DICE_MEAN, DICE_STD

BATCH, LR, MOMENTUM, DECAY, PAD = 128, 0.1, 0.9, 5e-4, 4


def augmented(images, generator):
    """Random crops of the zero-padded images and random horizontal flips (uint8 NCHW)."""
    n, _, h, w = images.shape
    padded = F.pad(images, (PAD, PAD, PAD, PAD))
    dy = torch.randint(0, 2 * PAD + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * PAD + 1, (n,), generator=generator)
    out = torch.stack([padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(n)])
    flip = torch.rand(n, generator=generator) < 0.5
    out[flip] = out[flip].flip(3)
    return out


def normalised(images):
    mean = torch.tensor(DICE_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(DICE_STD).view(1, 3, 1, 1)
    return (images.float() / 255 - mean) / std


def run(args):
    if args.out.exists() and not args.force:
        raise UserError(f"{args.out} exists; --force replaces it")
    files.check_writable(args.out.parent, "output folder")
    train, test = cifar("CIFAR-10", train=True), cifar("CIFAR-10")
    images, labels = train.images, torch.as_tensor(np.asarray(train.labels))
    torch.manual_seed(args.seed)
    model = torchvision.models.get_model(args.arch, weights=None, num_classes=10)
    optimiser = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM,
                                weight_decay=DECAY, nesterov=True)
    steps = args.epochs * (len(images) // BATCH)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, steps)
    started = time.time()
    for epoch in range(args.epochs):
        generator = torch.Generator().manual_seed(args.seed * 1000 + epoch)
        order = torch.randperm(len(images), generator=generator)
        model.train()
        with tqdm(range(len(images) // BATCH), desc=f"epoch {epoch + 1}/{args.epochs}") as bar:
            for step in bar:
                chosen = order[step * BATCH:(step + 1) * BATCH]
                batch = normalised(augmented(images[chosen], generator))
                loss = F.cross_entropy(model(batch), labels[chosen])
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                schedule.step()
                bar.set_postfix(loss=f"{loss.item():.3f}")
    model.eval()
    with torch.inference_mode():
        predictions = torch.cat([model(normalised(test.images[i:i + 500])).argmax(1)
                                 for i in range(0, len(test), 500)])
    accuracy = (predictions.numpy() == np.asarray(test.labels)).mean()
    files.save_torch(model.state_dict(), args.out)
    command = "python " + shlex.join(["scripts/train_torchvision.py", *sys.argv[1:]])
    print(f"{args.arch}: test accuracy {100 * accuracy:.2f}% after {args.epochs} epoch(s), "
          f"{time.time() - started:.0f} s; {args.out} sha256 {file_digest(args.out)}; "
          f"made by: {command}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="resnet18", help="a torchvision builder name")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args(argv)
    return report_errors(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
