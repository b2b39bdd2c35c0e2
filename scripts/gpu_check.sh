#!/usr/bin/env bash
# The GPU check, one short script that runs as is on a machine with a CUDA GPU (after the
# README's setup, or with torch and the data already there):
#   1. the README's default iSUN run on cuda and on the CPU: the largest per-image difference
#      of each score file (ODIN's scores span ~0.0035 at T = 1000: the tolerance is 1e-5);
#   2. images/s and peak GPU memory of ODIN scoring at batch sizes 32 to 1024;
#   3. the time of one tuning grid (10 T x 21 eps, 1,000 + 1,000 held-out images).
# Usage: bash scripts/gpu_check.sh [GPU index, default 0]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=python3
[ -x .venv/bin/python ] && PY=.venv/bin/python
gpu=${1:-0}
out=$(mktemp -d)
export TQDM_DISABLE=1
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else
  'gpu_check.sh: no CUDA device here (torch ' + torch.__version__ + ')')"
"$PY" -c "import torch; print('GPU:', torch.cuda.get_device_name($gpu), '| torch', torch.__version__)"

run() {   # run DEVICE-FLAG: the default iSUN run into $out/<flag>
  local started=$SECONDS
  ODIN_RUNS_DIR="$out/$1" "$PY" code/main.py --nn densenet10 --out_dataset iSUN \
    --magnitude 0.0014 --temperature 1000 --gpu "$1" | grep -E "AUROC|FPR at TPR 95|scoring"
  echo "  ($1: $((SECONDS - started)) s in all)"
}
echo "== 1. the default iSUN run, cuda:$gpu then the CPU"
run "$gpu"
run -1
"$PY" - "$out" "$gpu" <<'EOF'
import sys
from pathlib import Path
import numpy as np
out, gpu = Path(sys.argv[1]), sys.argv[2]
worst = 0.0
for cuda_file in sorted((out / gpu).rglob("confidence_*.txt")):
    cpu_file = out / "-1" / cuda_file.relative_to(out / gpu)
    a, b = (np.loadtxt(f, delimiter=",")[:, 2] for f in (cuda_file, cpu_file))
    diff = float(np.abs(a - b).max())
    worst = max(worst, diff)
    print(f"  {cuda_file.name:26} {len(a)} images, largest |cuda - cpu| = {diff:.2e}")
print(f"  largest difference {worst:.2e}: {'within' if worst <= 1e-5 else 'BEYOND'} 1e-5")
EOF

echo "== 2. ODIN scoring throughput and peak memory on cuda:$gpu (2,000 CIFAR-10 images)"
"$PY" - "$gpu" <<'EOF'
import sys, time
sys.path.insert(0, "code")
import torch
from torch.utils.data import Subset
from oodbench.core import runtime
from oodbench.datasets.image_sets import cifar
from oodbench.networks.registry import load_model
from oodbench.scoring import odin_scoring
device = torch.device("cuda", int(sys.argv[1]))
model, spec = load_model("densenet10", device)
model = runtime.prepare_model(model, device)
images = Subset(cifar("CIFAR-10"), range(1000, 3000))
for batch in (32, 128, 512, 1024):
    torch.cuda.reset_peak_memory_stats(device)
    odin_scoring.score_dataset(model, Subset(images, range(batch)), spec.mean, spec.std, 1000,
                               0.0014, device, batch)            # warm-up
    torch.cuda.synchronize(device)
    started = time.time()
    odin_scoring.score_dataset(model, images, spec.mean, spec.std, 1000, 0.0014, device, batch)
    torch.cuda.synchronize(device)
    seconds = time.time() - started
    peak = torch.cuda.max_memory_allocated(device) / 2**20
    print(f"  batch {batch:5}: {len(images) / seconds:7.0f} img/s, peak GPU memory {peak:6.0f} MB")
EOF

echo "== 3. one tuning grid on cuda:$gpu (tune.py, paper mode, iSUN, 1,000 + 1,000 images)"
started=$SECONDS
ODIN_RUNS_DIR="$out/tune" ODIN_RESULTS_DIR="$out/results" ODIN_FIGURES_DIR="$out/figures" \
  "$PY" code/tune.py --nn densenet10 --out_dataset iSUN --mode paper --gpu "$gpu" | head -1
echo "  tuning grid: $((SECONDS - started)) s in all (both sides' grids and the choice)"
rm -rf "$out"
