#!/usr/bin/env bash
# Train every LeNet of the FSSD benchmark (code/train.py, the authors' recipe) into models/lenet/:
#   fmnist_lenet_seed{1..15}.pt   plain LeNets; repetition r (1-3) of the benchmark uses seed r as
#                                 its network and seeds r, r+3, r+6, r+9, r+12 as its Deep Ensemble
#   fmnist_lenet_oe_seed{1..3}.pt Outlier Exposure fine-tunes of seeds 1-3
# then writes models/lenet/SHA256SUMS. The committed weights were made by this script; nobody
# needs to run it to reproduce the benchmark.
#   DEVICE=cuda JOBS=8 bash scripts/train_lenets.sh     (default: DEVICE=cpu JOBS=1)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
DEVICE=${DEVICE:-cpu}
JOBS=${JOBS:-1}
OUTDIR=${OUTDIR:-models/lenet}
mkdir -p "$OUTDIR"
TRAIN_ARGS=${TRAIN_ARGS:-}   # e.g. "--epochs 1 --max-steps 5" for a smoke run
export PYTHON DEVICE OUTDIR TRAIN_ARGS TQDM_DISABLE=${TQDM_DISABLE:-1}

plain() { "$PYTHON" code/train.py --device "$DEVICE" --seed "$1" $TRAIN_ARGS \
            --out "$OUTDIR/fmnist_lenet_seed$1.pt" > "$OUTDIR/fmnist_lenet_seed$1.out" 2>&1; }
oe() { "$PYTHON" code/train.py --device "$DEVICE" --seed "$1" --oe $TRAIN_ARGS \
         --init "$OUTDIR/fmnist_lenet_seed$1.pt" --out "$OUTDIR/fmnist_lenet_oe_seed$1.pt" \
         > "$OUTDIR/fmnist_lenet_oe_seed$1.out" 2>&1; }
export -f plain oe

started=$(date +%s)
seq 1 15 | xargs -P "$JOBS" -I{} bash -c 'plain {}'
seq 1 3 | xargs -P "$JOBS" -I{} bash -c 'oe {}'
echo "trained 18 LeNets on $DEVICE with $JOBS jobs in $(( $(date +%s) - started )) s"
(cd "$OUTDIR" && sha256sum fmnist_lenet_*.pt > SHA256SUMS && cat SHA256SUMS)
