"""Cost per image of Mahalanobis in full and FSSD on a CIFAR network, beside ODIN and a plain
forward, side by side in one run: the same model, images (CIFAR-10 test images from index
1,000), device and threads for every row.

Rows: a forward pass (inference mode, batches of 128); ODIN at one (T, eps) (calData, batches
of 32, main.py's default: a forward, a backward, a forward); Mahalanobis with input processing
at one magnitude, its passes run on all the images at once (as the authors' code runs its
batches; 512 of densenet10's would need 20 GB) and in chunks of 16 (as layerwise_runs.py);
FSSD likewise in chunks; and each grid (Mahalanobis 7 magnitudes, FSSD 22). Mahalanobis is
fitted on the benchmark images' own features (the cost does not depend on the fit).

``--passes``: instead, Mahalanobis in full at one magnitude taken apart, in chunks of 16:
the forward pass with its graph, the backward pass of each declared layer, the forward pass
to each layer (what the algorithm needs, whatever the code), their sum beside the whole
step and beside ODIN's.

    python scripts/bench_layerwise.py --n 256 [--nn densenet10] [--device cuda]
    python scripts/bench_layerwise.py --n 256 --passes
"""
import argparse
import sys
import time
from pathlib import Path

CODE = Path(__file__).resolve().parent.parent / "code"
sys.path.insert(0, str(CODE))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from oodbench.core import runtime  # noqa: E402
from oodbench.datasets.image_sets import cifar  # noqa: E402
from oodbench.detectors.fssd import FSSD, MAGNITUDES as FSSD_MAGNITUDES  # noqa: E402
from oodbench.detectors.mahalanobis_full import (LEE_MAGNITUDES, MahalanobisFull,  # noqa: E402
                                                 pooled)
from oodbench.networks.registry import load_model  # noqa: E402
from oodbench.pipelines.layerwise_runs import CHUNK  # noqa: E402
from oodbench.scoring.features import LayerMaps  # noqa: E402
from oodbench.scoring.odin_scoring import normaliser, odin_batch  # noqa: E402


def sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(function, x):
    function(x[:CHUNK])   # warm-up
    sync()
    started = time.perf_counter()
    function(x)
    sync()
    return time.perf_counter() - started


def batches(function, x, size):
    return [function(x[i:i + size]) for i in range(0, len(x), size)]


def passes(maha, net, model, spec, x, std, magnitude=0.0014):
    """{part: ms per image} of Mahalanobis in full at one magnitude, and of ODIN's step."""
    names = [f.name for f in spec.feature_layers]
    parts = dict.fromkeys(["forward with its graph", *(f"backward of {n}" for n in names),
                           *(f"forward to {n}" for n in names), "Mahalanobis step",
                           "ODIN step"], 0.0)

    def clocked(part, function):
        sync()
        started = time.perf_counter()
        value = function()
        sync()
        parts[part] += time.perf_counter() - started
        return value

    maha.grid_scores(net, x[:CHUNK], std, [magnitude], CHUNK)     # warm-up
    for start in range(0, len(x), CHUNK):
        chunk = x[start:start + CHUNK].detach().requires_grad_(True)
        outputs = clocked("forward with its graph", lambda: net.layer_maps(chunk, len(names)))
        steps = []
        for layer, name in enumerate(names):
            (gradient,) = clocked(f"backward of {name}", lambda: torch.autograd.grad(
                maha.loss(layer, outputs[layer]), chunk, retain_graph=layer < len(names) - 1))
            steps.append(maha.direction(gradient, std))
        with torch.no_grad():
            for layer, name in enumerate(names):
                clocked(f"forward to {name}",
                        lambda: net.layer_maps(chunk + magnitude * steps[layer], layer + 1))
        chunk = chunk.detach()
        clocked("Mahalanobis step", lambda: maha.grid_scores(net, chunk, std, [magnitude]))
        clocked("ODIN step", lambda: odin_batch(model, chunk, 1000, 0.0014, std))
    return {part: 1e3 * seconds / len(x) for part, seconds in parts.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=256, help="images (default 256; at most 512)")
    parser.add_argument("--nn", default="densenet10")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--passes", action="store_true",
                        help="Mahalanobis in full's passes against ODIN's step (see above)")
    args = parser.parse_args()
    model, spec = load_model(args.nn, args.device)
    model = runtime.prepare_model(model, args.device)
    net = LayerMaps(model, spec.feature_layers)
    normalise, std = normaliser(spec.mean, spec.std, args.device)
    images = torch.stack([cifar(spec.in_dataset)[i][0] for i in range(1000, 1000 + args.n)])
    x = normalise(images)
    if torch.device(args.device).type == "cpu":
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        feats = [np.concatenate(p) for p in zip(*batches(
            lambda b: [pooled(m).double().cpu().numpy() for m in net.layer_maps(b)], x, 64))]
    labels = np.arange(args.n) % spec.num_classes
    maha = MahalanobisFull().fit(feats, labels, spec.num_classes)
    if args.passes:
        found = passes(maha, net, model, spec, x, std)
        print(f"{args.n} CIFAR-10 test images, {args.nn}, {args.device}, "
              f"{torch.get_num_threads()} threads; ms per image, chunks of {CHUNK}")
        for part, ms in found.items():
            print(f"  {part:28} {ms:7.2f}")
        needed = sum(ms for part, ms in found.items() if not part.endswith("step"))
        print(f"  its passes together {needed:.2f} ms = {needed / found['ODIN step']:.2f}x "
              f"ODIN's step; the whole step "
              f"{found['Mahalanobis step'] / found['ODIN step']:.2f}x")
        return
    fssd = FSSD().fit(net, (3, 32, 32), 42, args.device, len(spec.feature_layers))

    def forward(x):
        with torch.inference_mode():
            batches(model, x, 128)
    rows = {
        "forward": forward,
        "ODIN, one (T, eps)": lambda x: batches(lambda b: odin_batch(model, b, 1000, 0.0014,
                                                                     std), x, 32),
        "Mahalanobis + input processing, one eps, all at once": lambda x: maha.grid_scores(
            net, x, std, [0.0014]),
        f"Mahalanobis + input processing, one eps, chunks of {CHUNK}": lambda x: maha.grid_scores(
            net, x, std, [0.0014], CHUNK),
        f"FSSD + input processing, one eps, chunks of {CHUNK}": lambda x: fssd.grid_scores(
            net, x, std, [0.01], CHUNK),
        f"Mahalanobis grid ({len(LEE_MAGNITUDES)})": lambda x: maha.grid_scores(
            net, x, std, list(LEE_MAGNITUDES), CHUNK),
        f"FSSD grid ({len(FSSD_MAGNITUDES)})": lambda x: fssd.grid_scores(
            net, x, std, list(FSSD_MAGNITUDES), CHUNK),
    }
    print(f"{args.n} CIFAR-10 test images, {args.nn}, {args.device}, "
          f"{torch.get_num_threads()} threads")
    base = None
    for name, function in rows.items():
        seconds = timed(function, x)
        base = base or seconds
        print(f"{name:58} {1e3 * seconds / args.n:8.1f} ms/img {seconds / base:6.1f} x forward",
              flush=True)


if __name__ == "__main__":
    main()
