"""What LA-OOD's co-training costs beside plain fine-tuning, side by side in one run.

On one network (default resnet56) with its LA-OOD fits (from the cache, fitted first when
missing), the same augmented batches, each row timed over --steps steps:

  p  plain fine-tuning step   cross-entropy only (cotrain.py --lambda 0's gradient)
  c  co-training step         cross-entropy - lambda x the OCSVM term of 10 drawn layers
  s  statistics pass          eval-mode forward with every fitted layer's pooled output kept
                              (per image; run over the whole training set once per epoch)
  a  test accuracy            inference-mode forward (per image; once per epoch)

and an epoch's estimate: steps x c + (training images) x s + (test images) x a.

    python scripts/bench_cotrain.py --nn resnet56 --steps 20
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "code"))
from oodbench.losses.ocsvm import OCSVMTerm  # noqa: E402
from oodbench.networks.registry import get_spec  # noqa: E402
from oodbench.pipelines import cotraining  # noqa: E402
from oodbench.pipelines.runs import ScoringOptions  # noqa: E402
from oodbench.scoring.odin_scoring import normaliser  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nn", default="resnet56")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lam", type=float, default=0.001)
    args = parser.parse_args()
    spec = get_spec(args.nn)
    fits, _, train = cotraining.laood_fits(args.nn, ScoringOptions(device="cpu"), 5000,
                                           "narrow")
    normalise, _ = normaliser(spec.mean, spec.std, "cpu")
    terms = {name: OCSVMTerm(fit) for name, fit in fits.items()}
    print(f"{args.nn}: {len(terms)} fitted layers, support vectors per layer "
          f"{min(len(f.support_vectors) for f in fits.values())}-"
          f"{max(len(f.support_vectors) for f in fits.values())}; "
          f"{torch.get_num_threads()} torch threads; batch {args.batch_size}")
    model = cotraining.trainable(args.nn, "cpu")
    taps = cotraining.Taps(model, list(terms))
    generator = torch.Generator().manual_seed(0)
    stats = cotraining.channel_stats(model, taps, torch.utils.data.Subset(train, range(512)),
                                     list(terms), normalise, generator, 256, "statistics")
    optimiser = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9)
    rng = np.random.default_rng(0)
    batches = [cotraining.batch_of(train, torch.randint(0, len(train), (args.batch_size,),
                                                        generator=generator))
               for _ in range(args.steps + 1)]
    seconds = {}
    for row, lam in (("p", 0.0), ("c", args.lam)):
        model.train()
        for i, (images, labels) in enumerate(batches):
            if i == 1:
                started = time.perf_counter()
            inputs = normalise(cotraining.augment(images, generator))
            loss, _, _ = cotraining.step_loss(model, taps, terms, stats, inputs, labels,
                                              cotraining.draw_layers(rng, list(terms), 10), lam)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        seconds[row] = (time.perf_counter() - started) / args.steps
    images = torch.cat([b[0] for b in batches])[:1024]
    model.eval()
    taps.wanted = set(terms)
    with torch.no_grad():
        model(normalise(images[:256]))
        started = time.perf_counter()
        for part in images.split(256):
            model(normalise(part))
        seconds["s"] = (time.perf_counter() - started) / len(images)
    taps.close()
    with torch.inference_mode():
        started = time.perf_counter()
        for part in images.split(500):
            model(normalise(part))
        seconds["a"] = (time.perf_counter() - started) / len(images)
    steps = -(-len(train) // args.batch_size)
    print(f"  p  plain fine-tuning step   {seconds['p']:6.3f} s/step "
          f"{args.batch_size / seconds['p']:7.1f} img/s")
    print(f"  c  co-training step         {seconds['c']:6.3f} s/step "
          f"{args.batch_size / seconds['c']:7.1f} img/s   c/p {seconds['c'] / seconds['p']:.2f}x")
    print(f"  s  statistics pass          {1 / seconds['s']:7.1f} img/s")
    print(f"  a  test accuracy            {1 / seconds['a']:7.1f} img/s")
    epoch = steps * seconds["c"] + len(train) * seconds["s"] + 10000 * seconds["a"]
    print(f"  an epoch: {steps} steps + {len(train)} statistics images + 10,000 test images "
          f"= about {epoch:.0f} s ({steps * seconds['c']:.0f} + "
          f"{len(train) * seconds['s']:.0f} + {10000 * seconds['a']:.0f})")


if __name__ == "__main__":
    main()
