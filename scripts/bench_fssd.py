"""Cost per image of each method of the FSSD benchmark, side by side, in one run: the same
committed LeNet (seed 1), the same Fashion-MNIST test images, the same device and batch (512).

Rows: a plain forward (Baseline's MSP); ODIN at one (T, eps) (a backward and a forward);
Mahalanobis and FSSD with input processing at one magnitude (a backward and a forward per
layer, four layers); Deep Ensemble (5 forwards); MC Dropout (32 passes of the head after one
trunk pass); and each tuned method's whole grid (ODIN 4 T x 22 eps, Mahalanobis 14, FSSD 22).

    python scripts/bench_fssd.py --n 2048 [--device cuda]
"""
import argparse
import sys
import time
from pathlib import Path

CODE = Path(__file__).resolve().parent.parent / "code"
sys.path.insert(0, str(CODE))

import torch  # noqa: E402

from oodbench.datasets import greysets  # noqa: E402
from oodbench.detectors.deep_ensemble import ensemble_score, max_softmax  # noqa: E402
from oodbench.detectors.fssd import MAGNITUDES as FSSD_MAGNITUDES  # noqa: E402
from oodbench.detectors.mahalanobis_full import MahalanobisFull  # noqa: E402
from oodbench.networks.lenet import FMNIST_STD  # noqa: E402
from oodbench.pipelines import fssd_protocol  # noqa: E402


def timed(function, repeat=2):
    function()   # warm-up
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(repeat):
        function()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return (time.perf_counter() - started) / repeat


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2048, help="images (default 2048)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    repetition = fssd_protocol.Repetition(1, args.device)
    repetition.fit_mahalanobis()
    x = repetition.inputs(greysets.fashion_mnist()[0][:args.n])
    base, maha, fssd = repetition.base, repetition.mahalanobis, repetition.fssd
    odin_grid = [(t, m) for m in FSSD_MAGNITUDES for t in fssd_protocol.ODIN_TEMPERATURES]
    rows = {
        "forward (Baseline)": lambda: fssd_protocol.batched(lambda b: max_softmax(base, b), x),
        "ODIN, one (T, eps)": lambda: fssd_protocol.odin_grid(base, x, [(1000, 0.0014)]),
        "Mahalanobis + input processing, one eps": lambda: maha.grid_scores(
            base, x, FMNIST_STD, [0.0014]),
        "FSSD + input processing, one eps": lambda: fssd.grid_scores(base, x, FMNIST_STD, [0.01]),
        "Deep Ensemble (5 networks)": lambda: fssd_protocol.batched(
            lambda b: ensemble_score(repetition.members, b), x),
        "MC Dropout (32 passes)": lambda: fssd_protocol.mc_dropout_score_all(base, x),
        "ODIN grid (88)": lambda: fssd_protocol.odin_grid(base, x, odin_grid),
        "Mahalanobis grid (14)": lambda: maha.grid_scores(base, x, FMNIST_STD,
                                                          list(MahalanobisFull.magnitudes)),
        "FSSD grid (22)": lambda: fssd.grid_scores(base, x, FMNIST_STD, list(FSSD_MAGNITUDES)),
    }
    print(f"{args.n} Fashion-MNIST images, LeNet seed 1, {args.device}, "
          f"{torch.get_num_threads()} threads")
    forward = None
    for name, function in rows.items():
        seconds = timed(function, repeat=1 if "grid" in name else 2)
        forward = forward or seconds
        print(f"{name:42} {1e3 * seconds / args.n:8.3f} ms/img  {args.n / seconds:9.0f} img/s  "
              f"{seconds / forward:6.1f} x forward", flush=True)


if __name__ == "__main__":
    main()
