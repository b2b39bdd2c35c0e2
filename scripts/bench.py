"""Benchmark ODIN scoring side by side: the release's loop, pytorch-ood, ours, and a plain forward.

Same device, model (the authors' densenet10), T, eps and images (CIFAR-10 test
images from index 1,000) for every row; each row runs in a fresh child process
so that its peak memory is its own. Rows:

  a  release loop   batch 1, weight gradients on (what the release does), written here
  b  pytorch-ood    pytorch_ood.detector.ODIN, as documented (model weights trainable);
                    needs `pip install --no-deps pytorch-ood` (benchmark only)
  c  ours           odin_scoring.score_dataset with the settings main.py picks for a full
                    run (9,000 + 9,000 images): channels_last, and torch.compile on the
                    CPU; its one-off warm-up (compilation) is printed, not timed
  d  forward        one batched forward pass in inference mode: the roofline;
                    ODIN needs about three forward-equivalents, so d/3 is its floor

The shared feature pass of the other detectors (``--rows dft --batch-size 128``):

  f  features.extract   one forward pass with the hooks of every declared layer (compare
                        with d at the same batch size: the target is <= 1.2x its time)
  t  detectors          every gradient-free detector, fitted on the cached CIFAR-10
                        training features (computed first if the cache lacks them: the
                        50,000-image pass, timed and printed) and scoring the features of
                        2 x n images (both sides of a run); KNN's exact search among them

The tuning grid (10 temperatures x 21 magnitudes), rows g and n (``--rows gn``):

  g  tuning.grid_scores        clean forward once, one backward per T, a forward per (T, eps > 0)
  n  tuning.naive_grid_scores  every (T, eps) scored from scratch with calData

A model from files against the registry's (``--rows euxvw``), every row eager (no
compilation), batch --batch-size:

  e  registry        ODIN on --nn densenet10 (the registry path)
  u  --arch          ODIN on --arch densenet-bc-100-12 --weights <the same file>
  x  --model .pt2    ODIN on densenet10 saved by torch.export (unflattened, so hookable)
  v  224x224         ODIN on torchvision's resnet18 (random weights) at 224x224
  w  224x224 fwd     one forward pass of that resnet18, inference mode

Intervals (``--rows i``), no model: every 95% interval and paired test of a comparison the
size of densenet10's (15 detectors x 7 OOD sets, 9,000 images a side, iSUN 7,925; B = 2,000;
reports/uncertainty.py) on synthetic scores, beside the per-resample loop it replaces
(index resamples and scikit-learn's roc_auc_score, AUROC only, timed on 50 resamples of one
cell and scaled to the table).

  i  intervals   reports/uncertainty.assess of the whole table

This machine's limit (``--rows m``): fp32 matrix-multiply GFLOP/s on the threads used
(machine_gflops, 1024 x 1024, 2 s), then each network's forward pass
(inference mode, batch --batch-size, --n images after a warm-up batch) as images/s, GFLOP/s
(its FLOPs counted by torch.utils.flop_counter) and % of that limit.

  m  machine limit   densenet10, resnet20 and resnet56 forward against the matmul peak

Where the forward's time goes and what changes it (``--rows k``): densenet10's forward in
inference mode at batch --batch-size, eager against torch.compile (inductor), inductor
with freezing (weights folded in as constants) and TorchScript's freeze, the variants
interleaved, best of five rounds of --n images each (this CPU's timings drift between runs;
interleaving keeps the ratios fair); then the eager forward's time per operator kind
(torch.profiler) and the convolutions' own GFLOP/s against the matmul peak.

  k  forward kernels   eager / inductor / + freezing / TorchScript; time by operator

Processes against threads (``--processes``): on this CPU, 2 ranks x 1 thread (torchrun, one
process per core, each scoring half the images: shards.py) against 1 process x 2 threads,
for main.py's iSUN run (--n images a side, no cache, no compilation) and tune.py's grid
(--tune-n images a side); whole commands, start-up included, and their score files compared.

    python scripts/bench.py --n 256 [--device cuda]
    python scripts/bench.py --processes --n 1000 --tune-n 50
    python scripts/bench.py --rows gn --n 16
    python scripts/bench.py --rows dft --n 7925 --batch-size 128
    python scripts/bench.py --rows euxvw --n 256
    python scripts/bench.py --rows i
    python scripts/bench.py --rows m --n 512 --batch-size 128
    python scripts/bench.py --rows k --n 256
"""
import argparse
import copy
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CODE = Path(__file__).resolve().parent.parent / "code"
sys.path.insert(0, str(CODE))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import torchvision  # noqa: E402

from oodbench import detectors  # noqa: E402
from oodbench.core import runtime  # noqa: E402
from oodbench.datasets.image_sets import cifar, sized  # noqa: E402
from oodbench.networks import from_files  # noqa: E402
from oodbench.networks.registry import get_spec, load_model  # noqa: E402
from oodbench.pipelines import feature_runs  # noqa: E402
from oodbench.pipelines import tuning  # noqa: E402
from oodbench.pipelines.runs import ScoringOptions  # noqa: E402
from oodbench.scoring import features  # noqa: E402
from oodbench.scoring import odin_scoring  # noqa: E402

T, EPS = 1000, 0.0014
ROWS = {"a": "release loop (batch 1, weight grads)", "b": "pytorch-ood ODIN",
        "c": "ours (main.py settings)", "d": "forward only (inference mode)",
        "g": "tuning grid, ours (210 cells)", "n": "tuning grid, naive (210 cells)",
        "f": "feature pass (hooks, inference mode)", "t": "gradient-free detectors (2n images)",
        "e": "ODIN, registry densenet10 (eager)", "u": "ODIN, --arch densenet-bc-100-12",
        "x": "ODIN, densenet10 as --model .pt2", "v": "ODIN, resnet18 at 224x224",
        "w": "forward, resnet18 at 224x224", "i": "intervals of a densenet10-sized table",
        "m": "fp32 matmul peak and each forward's share",
        "k": "densenet10 forward: kernels and operators"}


def own_model(row, device, tmp):
    """(model, spec) of rows u, x, v, w: densenet10's file under --arch, densenet10 exported,
    torchvision's resnet18 at 224x224."""
    registry_spec = get_spec("densenet10")
    sizes = dict(mean=",".join(map(str, registry_spec.mean)),
                 std=",".join(map(str, registry_spec.std)))
    if row == "u":
        spec = from_files.from_files(arch="densenet-bc-100-12", weights=registry_spec.path,
                                     **sizes)
    elif row == "x":
        network, _ = load_model("densenet10")
        program = torch.export.export(network, (torch.zeros(2, 3, 32, 32),),
                                      dynamic_shapes=({0: torch.export.Dim("batch")},))
        torch.export.save(program, tmp / "densenet10.pt2")
        spec = from_files.from_files(exported=tmp / "densenet10.pt2", **sizes)
    else:
        torch.manual_seed(0)
        torch.save(torchvision.models.resnet18(num_classes=10).state_dict(), tmp / "r18.pt")
        spec = from_files.from_files(arch="resnet18", weights=tmp / "r18.pt", image_size=224)
    return load_model(spec.name, device)


def images(n, size=32):
    data = sized(cifar("CIFAR-10"), size)
    return torch.stack([data[i][0] for i in range(1000, 1000 + n)])


def release_loop(model, batch, mean, std, device):
    """One image at a time with weight gradients on, as the release does it."""
    model.requires_grad_(True)
    normalise, std_t = odin_scoring.normaliser(mean, std, device)
    odin = []
    for image in batch:
        x = normalise(image[None]).requires_grad_(True)
        logits = model(x)
        label = logits.detach().argmax(1)
        F.cross_entropy(logits / T, label).backward()
        signed = (torch.ge(x.grad, 0).float() - 0.5) * 2
        perturbed = x.detach() - EPS * signed / std_t
        odin.append(F.softmax(model(perturbed).detach() / T, 1).max(1).values.cpu())
    return torch.cat(odin).numpy()


def pytorch_ood(model, batch, mean, std, device, batch_size):
    from pytorch_ood.detector import ODIN
    model.requires_grad_(True)
    detector = ODIN(model, criterion=F.cross_entropy, eps=EPS, temperature=T, norm_std=list(std))
    normalise, _ = odin_scoring.normaliser(mean, std, device)
    for start in range(0, len(batch), batch_size):
        detector.predict(normalise(batch[start:start + batch_size]))


def forward_only(model, batch, mean, std, device, batch_size):
    normalise, _ = odin_scoring.normaliser(mean, std, device)
    with torch.inference_mode():
        for start in range(0, len(batch), batch_size):
            model(normalise(batch[start:start + batch_size])).softmax(1).max(1)


def detector_costs(spec, batch, device, batch_size):
    """Fit and score every gradient-free detector on 2 x len(batch) images; {name: seconds}."""
    scorer = feature_runs.FeatureScorer("densenet10", ScoringOptions(device, batch_size))
    started = time.perf_counter()
    train = scorer.train_features("bench")
    print(f"training features: {time.perf_counter() - started:.1f} s (cache or pass)",
          file=sys.stderr)
    test = features.extract(scorer.model(), spec, torch.utils.data.TensorDataset(
        batch, torch.zeros(len(batch))), device, batch_size)
    both = test.take(np.r_[np.arange(len(test)), np.arange(len(test))])
    costs = {}
    for name in detectors.FEATURE_DETECTORS:
        started = time.perf_counter()
        detector = detectors.make(name).fit(train if detectors.DETECTORS[name].needs_training
                                            else None, scorer.head())
        fitted = time.perf_counter()
        detector.score(both)
        costs[name] = (round(fitted - started, 3), round(time.perf_counter() - fitted, 3))
    return costs


def machine_gflops(seconds=1.0, size=1024):
    """fp32 matrix-multiply GFLOP/s on the threads torch uses."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        a @ b
        count += 1
    return 2 * size ** 3 * count / (time.perf_counter() - started) / 1e9


def machine_limit(n, device, batch_size):
    """Row m: the matmul peak and each network's forward as GFLOP/s and % of it."""
    from torch.utils.flop_counter import FlopCounterMode
    peak = machine_gflops(2.0) if device.type == "cpu" else float("nan")
    found = {}
    for name in ("densenet10", "resnet20", "resnet56"):
        model, spec = load_model(name, device)
        model = runtime.prepare_model(model, device, False)
        batch = images(n, spec.image_size)
        normalise, _ = odin_scoring.normaliser(spec.mean, spec.std, device)
        with torch.inference_mode(), FlopCounterMode(display=False) as counter:
            model(normalise(batch[:1].to(device)))
        flops = counter.get_total_flops()
        forward_only(model, batch[:batch_size], spec.mean, spec.std, device, batch_size)
        sync(device)
        started = time.perf_counter()
        forward_only(model, batch, spec.mean, spec.std, device, batch_size)
        sync(device)
        per_s = n / (time.perf_counter() - started)
        found[name] = {"gflop_per_image": flops / 1e9, "images_per_s": per_s,
                       "gflops": flops * per_s / 1e9}
    return {"row": "m", "peak_gflops": peak, "models": found}


def forward_kernels(n, device, batch_size, rounds=5):
    """Row k: images/s of densenet10's inference forward per variant (interleaved, best of
    ``rounds``), the largest |difference| from eager, and the eager forward's time by
    operator kind."""
    from torch.profiler import ProfilerActivity, profile
    from torch.utils.flop_counter import FlopCounterMode
    eager, spec = load_model("densenet10", device)
    eager = runtime.prepare_model(eager.requires_grad_(False), device, False)
    normalise, _ = odin_scoring.normaliser(spec.mean, spec.std, device)
    x = normalise(images(batch_size).to(device))
    if device.type == "cpu":
        x = x.contiguous(memory_format=torch.channels_last)
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", tempfile.mkdtemp())
    # each compiled variant gets its own copy: a copy is another module to dynamo's guards,
    # so it is compiled anew with its own options rather than served the first's graph
    variants = {"eager": eager,
                "inductor": torch.compile(copy.deepcopy(eager), dynamic=False),
                "inductor + freezing": torch.compile(copy.deepcopy(eager), dynamic=False,
                                                     options={"freezing": True}),
                "TorchScript freeze": torch.jit.optimize_for_inference(torch.jit.freeze(
                    torch.jit.trace(copy.deepcopy(eager).eval(), x)))}
    with torch.no_grad():
        reference = eager(x)
        differences, warm_up = {"eager": 0.0}, {}
        for name in ("inductor", "inductor + freezing", "TorchScript freeze"):
            started = time.perf_counter()
            differences[name] = (variants[name](x) - reference).abs().max().item()
            warm_up[name] = time.perf_counter() - started
        batches = max(1, n // batch_size)
        best = {name: float("inf") for name in variants}
        for _ in range(rounds):
            for name, model in variants.items():
                sync(device)
                started = time.perf_counter()
                for _ in range(batches):
                    model(x)
                sync(device)
                best[name] = min(best[name], time.perf_counter() - started)
        with FlopCounterMode(display=False) as counter:
            eager(x)
        with profile(activities=[ProfilerActivity.CPU]) as profiled:
            for _ in range(batches):
                eager(x)
    by_kind = {}
    for event in profiled.key_averages():
        kind = event.key.replace("aten::", "")
        kind = {"mkldnn_convolution": "convolution", "native_batch_norm": "batch norm",
                "clamp_min_": "ReLU", "cat": "concatenation"}.get(kind)
        if kind:
            by_kind[kind] = by_kind.get(kind, 0) + event.self_cpu_time_total / 1e6
    profiled_s = sum(e.self_cpu_time_total for e in profiled.key_averages()) / 1e6
    conv_gflops = counter.get_total_flops() * batches / 1e9 / by_kind.get("convolution", 1)
    return {"row": "k", "peak_gflops": machine_gflops(2.0) if device.type == "cpu" else None,
            "images_per_s": {k: batches * batch_size / v for k, v in best.items()},
            "max_difference": differences, "warm_up_s": warm_up,
            "share": {k: v / profiled_s for k, v in by_kind.items()},
            "conv_gflops": conv_gflops}


def interval_costs():
    """Row i: the intervals and paired tests of a densenet10-sized comparison, and the naive
    loop's estimate (module docstring)."""
    from sklearn.metrics import roc_auc_score
    from oodbench.reports import uncertainty
    rng = np.random.default_rng(0)
    sizes = {"iSUN": 7925, **{f"set{k}": 9000 for k in range(6)}}
    rows = [f"detector{k}" for k in range(15)]
    scores = {}
    for column, n in sizes.items():
        truth_in, truth_out = rng.normal(1, 1, n), rng.normal(0, 1, n)
        for row in rows:
            scores[column, row] = (truth_in + rng.normal(0, 0.5, n),
                                   truth_out + rng.normal(0, 0.5, n))
    started = time.perf_counter()
    found = uncertainty.assess(scores, list(sizes), rows)
    seconds = time.perf_counter() - started
    ins, outs = scores["set0", rows[0]]
    labels = np.r_[np.ones(len(ins)), np.zeros(len(outs))]
    started = time.perf_counter()
    for _ in range(50):
        picked_in = rng.integers(0, len(ins), len(ins))
        picked_out = rng.integers(0, len(outs), len(outs))
        roc_auc_score(labels, np.r_[ins[picked_in], outs[picked_out]])
    naive = (time.perf_counter() - started) / 50 * found.resamples * len(scores)
    return {"row": "i", "seconds": seconds, "cells": len(scores), "pairs": len(found.pairs),
            "resamples": found.resamples, "naive_s": naive}


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def worker(row, n, device, batch_size, scores_path):
    """Time one row in this process; print a JSON line."""
    if row == "i":
        print(json.dumps(interval_costs()))
        return
    if row == "m":
        print(json.dumps(machine_limit(n, torch.device(device), batch_size)))
        return
    if row == "k":
        runtime.configure_allocator()
        print(json.dumps(forward_kernels(n, torch.device(device), batch_size)))
        return
    runtime.configure_allocator()
    device = torch.device(device)
    model, spec = (own_model(row, device, Path(tempfile.mkdtemp())) if row in "uxvw"
                   else load_model("densenet10", device))
    compiled = row == "c" and runtime.should_compile("auto", device, 18000)
    if row != "a":
        model = runtime.prepare_model(model, device, compiled)
    batch = images(n, spec.image_size)
    warm = batch[:batch_size]
    as_dataset = lambda b: torch.utils.data.TensorDataset(b, torch.zeros(len(b)))  # noqa: E731
    run = {
        "a": lambda b: release_loop(model, b, spec.mean, spec.std, device),
        "g": lambda b: tuning.grid_scores(model, as_dataset(b), spec.mean, spec.std, device,
                                          batch_size=batch_size),
        "n": lambda b: tuning.naive_grid_scores(model, as_dataset(b), spec.mean, spec.std,
                                                device, batch_size=batch_size),
        "b": lambda b: pytorch_ood(model, b, spec.mean, spec.std, device, batch_size),
        "c": lambda b: odin_scoring.score_dataset(
            model, as_dataset(b), spec.mean, spec.std, T, EPS, device, batch_size=batch_size,
            desc="ours", static_shape=compiled).odin,
        "d": lambda b: forward_only(model, b, spec.mean, spec.std, device, batch_size),
        "w": lambda b: forward_only(model, b, spec.mean, spec.std, device, batch_size),
        **{r: lambda b: odin_scoring.score_dataset(
            model, as_dataset(b), spec.mean, spec.std, T, EPS, device, batch_size=batch_size,
            desc=ROWS[row]).odin for r in "euxv"},
        "f": lambda b: features.extract(model, spec, as_dataset(b), device, batch_size).logits,
    }.get(row)
    if row == "t":
        costs = detector_costs(spec, images(n), device, batch_size)
        print(json.dumps({"row": row, "costs": costs, "compiled": False,
                          "seconds": sum(f + s for f, s in costs.values())}))
        return
    started = time.perf_counter()
    run(warm[:2] if row in "agn" else warm)
    sync(device)
    warm_up = time.perf_counter() - started
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    started = time.perf_counter()
    scores = run(batch)
    sync(device)
    seconds = time.perf_counter() - started
    if scores is not None:
        np.save(scores_path, np.asarray(scores))
    peak = (torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps({"row": row, "seconds": seconds, "images_per_s": n / seconds,
                      "peak_mb": peak, "warm_up_s": warm_up, "compiled": compiled}))


def run_command(command, threads, ranks, outputs):
    """Wall seconds of ``command`` (a script in code/ and its flags) run by ``ranks``
    processes of ``threads`` threads each, its runs/ and results/ in ``outputs``."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "TQDM_DISABLE": "1",
           **{f"ODIN_{name.upper()}_DIR": str(outputs / name)
              for name in ("runs", "results", "figures")}}
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone",
                 f"--nproc_per_node={ranks}"] if ranks > 1 else [sys.executable])
    started = time.time()
    done = subprocess.run([*launcher, str(CODE / command[0]), *command[1:]], env=env,
                          capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    return time.time() - started


def processes_against_threads(n, tune_n):
    cores = os.cpu_count()
    print(f"CPU, {cores} cores; densenet10; {cores} ranks x 1 thread (torchrun) against "
          f"1 process x {cores} threads; whole commands, start-up included")
    commands = {
        f"main.py iSUN, {n} + {n} images": [
            "main.py", "--nn", "densenet10", "--out_dataset", "iSUN", "--max-images", str(n),
            "--gpu", "-1", "--no-cache", "--compile", "off"],
        f"tune.py grid, {tune_n} + {tune_n} images (10 T x 21 eps)": [
            "tune.py", "--nn", "densenet10", "--out_dataset", "iSUN", "--tune-images",
            str(tune_n), "--gpu", "-1"]}
    tmp = Path(tempfile.mkdtemp())
    for label, command in commands.items():
        one = run_command(command, cores, 1, tmp / f"threads_{label[:4]}")
        many = run_command(command, 1, cores, tmp / f"ranks_{label[:4]}")
        print(f"  {label:48} 1 x {cores} threads {one:7.1f} s   {cores} ranks x 1 "
              f"{many:7.1f} s   ranks/threads time {many / one:5.2f}x")
    scores = {kind: {p.relative_to(tmp / f"{kind}_main"): p.read_bytes()
                     for p in (tmp / f"{kind}_main").rglob("confidence_*.txt")}
              for kind in ("threads", "ranks")}
    same = scores["threads"] == scores["ranks"] and len(scores["threads"]) == 4
    print(f"  score files: {'identical' if same else 'DIFFERENT'}")


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=256, help="images per row (default 256)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 (default cpu)")
    parser.add_argument("--batch-size", type=int, default=32,
                        help="batch size of rows b, c, d (default 32, main.py's default)")
    parser.add_argument("--rows", default="abcd", help="which rows to run (default abcd)")
    parser.add_argument("--processes", action="store_true",
                        help="compare torchrun ranks with threads instead (see above)")
    parser.add_argument("--tune-n", type=int, default=50,
                        help="images a side of --processes' tuning grid (default 50)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--scores", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.processes:
        return processes_against_threads(args.n, args.tune_n)
    if args.worker:
        return worker(args.worker, args.n, args.device, args.batch_size, args.scores)

    device = torch.device(args.device)
    name = (torch.cuda.get_device_name(device) if device.type == "cuda"
            else f"CPU, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads")
    print(f"device: {name}; torch {torch.__version__}; densenet10; {args.n} CIFAR-10 images; "
          f"T={T}, eps={EPS}; batch {args.batch_size} (row a: 1)")
    results, tmp = {}, Path(tempfile.mkdtemp())
    for row in args.rows:
        cmd = [sys.executable, __file__, "--worker", row, "--n", str(args.n), "--device",
               args.device, "--batch-size", str(args.batch_size), "--scores", str(tmp / row)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        if done.returncode or not lines:
            reason = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"
            print(f"  {row}  {ROWS[row]:40} not run: {reason}")
            continue
        results[row] = json.loads(lines[-1])
        r = results[row]
        if row == "t":
            print(f"  t  {ROWS[row]:40} (fit s, score s of {2 * args.n} images): "
                  + ", ".join(f"{k} {f:.2f}/{sc:.2f}" for k, (f, sc) in r["costs"].items()))
            total = sum(sc for _, sc in r["costs"].values())
            print(f"     all detectors' scoring {total:.1f} s, fitting "
                  f"{sum(f for f, _ in r['costs'].values()):.1f} s once per model")
            continue
        if row == "m":
            print(f"  m  {ROWS[row]:40} {r['peak_gflops']:7.1f} GFLOP/s (fp32 matmul, "
                  f"{torch.get_num_threads()} threads)")
            for name, m in r["models"].items():
                print(f"     {name:12} forward {m['images_per_s']:8.1f} img/s  "
                      f"{m['gflop_per_image']:.3f} GFLOP/img  {m['gflops']:6.1f} GFLOP/s  "
                      f"{100 * m['gflops'] / r['peak_gflops']:5.1f}% of the peak")
            continue
        if row == "k":
            base = r["images_per_s"]["eager"]
            print(f"  k  {ROWS[row]}, batch {args.batch_size}")
            for name, speed in r["images_per_s"].items():
                warm = r["warm_up_s"].get(name)
                print(f"     {name:20} {speed:8.1f} img/s  {speed / base:5.2f}x eager  max |diff| "
                      f"{r['max_difference'][name]:.1e}"
                      + (f"  (compiled in {warm:.0f} s)" if warm else ""))
            shares = sorted(r["share"].items(), key=lambda kv: -kv[1])
            print("     eager time by operator: "
                  + ", ".join(f"{k} {100 * v:.0f}%" for k, v in shares))
            if r["peak_gflops"]:
                print(f"     convolutions alone: {r['conv_gflops']:.0f} GFLOP/s, "
                      f"{100 * r['conv_gflops'] / r['peak_gflops']:.0f}% of the fp32 matmul "
                      f"peak ({r['peak_gflops']:.0f} GFLOP/s)")
            continue
        if row == "i":
            print(f"  i  {ROWS[row]:40} {r['seconds']:7.1f} s  ({r['cells']} cells, "
                  f"{r['pairs']} pairs, B = {r['resamples']:,}); the per-resample loop, AUROC "
                  f"only: {r['naive_s']:.0f} s (estimated), {r['naive_s'] / r['seconds']:.0f}x")
            continue
        note = f"  (compiled; warm-up {r['warm_up_s']:.0f} s)" if r["compiled"] else ""
        print(f"  {row}  {ROWS[row]:40} {r['images_per_s']:8.1f} img/s  {r['seconds']:7.1f} s  "
              f"peak {r['peak_mb']:7.0f} MB{note}")
    speed = {row: r["images_per_s"] for row, r in results.items() if "images_per_s" in r}
    if "c" in speed:
        for other, label in (("a", "c/a"), ("b", "c/b")):
            if other in speed:
                print(f"  {label:10} {speed['c'] / speed[other]:6.2f}x")
        if "d" in speed:
            print(f"  c/(d/3)    {speed['c'] / (speed['d'] / 3):6.2f}x")
    if "f" in speed and "d" in speed:
        print(f"  f/d time   {speed['d'] / speed['f']:6.2f}x (feature pass over a forward)")
    if "t" in results and "f" in speed:
        scoring = sum(sc for _, sc in results["t"]["costs"].values())
        feature_pass = 2 * args.n / speed["f"]
        print(f"  t/f time   {100 * scoring / feature_pass:5.1f}% (all detectors' scoring over "
              f"the feature pass of {2 * args.n} images, {feature_pass:.0f} s)")
    if "g" in speed and "n" in speed:
        print(f"  g/n cost   {speed['n'] / speed['g']:6.2f}x (time of ours over naive)")
    if (tmp / "g.npy").exists() and (tmp / "n.npy").exists():
        diff = np.abs(np.load(tmp / "g.npy") - np.load(tmp / "n.npy")).max()
        print(f"  grids: max |g - n| = {diff:.2e}")
    for other in "ux":
        if other in speed and "e" in speed:
            diff = np.abs(np.load(tmp / f"{other}.npy") - np.load(tmp / "e.npy")).max()
            print(f"  {other}/e time {speed['e'] / speed[other]:6.2f}x (a model from files over "
                  f"the registry's); max |{other} - e| = {diff:.2e}")
    if "v" in speed and "w" in speed:
        print(f"  v/(w/3)    {speed['v'] / (speed['w'] / 3):6.2f}x (224x224 ODIN over its floor)")
    if (tmp / "a.npy").exists() and (tmp / "c.npy").exists():
        diff = np.abs(np.load(tmp / "a.npy") - np.load(tmp / "c.npy")).max()
        print(f"  scores: max |c - a| = {diff:.2e} ({'equal' if diff <= 1e-5 else 'DIFFERENT'}"
              " within 1e-5)")


if __name__ == "__main__":
    main()
