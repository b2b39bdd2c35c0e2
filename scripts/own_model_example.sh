#!/usr/bin/env bash
# The worked example of docs/your-model.md, from nothing, in minutes on a 2-core CPU:
#   1. a user-style checkpoint: torchvision's ResNet-18 trained on CIFAR-10 for 5 epochs here
#      (scripts/train_torchvision.py: a plain state_dict, as a user's training script writes);
#   2. the user's OOD images as a folder of PNG files: 3,000 Fashion-MNIST test images
#      (28x28 grey: made RGB and resized to 32x32 by the stated policy);
#   3. compare.py: ODIN and every gradient-free detector on that folder, on Tiny-ImageNet as
#      a folder tree (data/TIN_crop) and on two built-in sets, 2,000 test images a side.
# Resumable: the checkpoint, the PNGs and every run folder are reused when there.
# Writes results/detectors_resnet18-<digest>_tune200_sets-..._n2000.md (the README's table).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
EXAMPLE=${ODIN_RUNS_DIR:-runs}/example
WEIGHTS=$EXAMPLE/resnet18_cifar10.pt
PNGS=$EXAMPLE/fashion_mnist_png

mkdir -p "$EXAMPLE"
[ -f "$WEIGHTS" ] || $PY scripts/train_torchvision.py --arch resnet18 --epochs 5 --seed 0 \
    --out "$WEIGHTS"

if [ ! -f "$PNGS/.complete" ]; then
    $PY - "$PNGS" <<'EOF'
import sys
from pathlib import Path

from PIL import Image

from oodbench.assets.catalog import require
from oodbench.datasets.image_sets import read_idx_images

folder = Path(sys.argv[1])
folder.mkdir(parents=True, exist_ok=True)
for i, image in enumerate(read_idx_images(require("fashion-mnist-images"))[:3000]):
    Image.fromarray(image).save(folder / f"{i:05d}.png")
(folder / ".complete").write_text("3000 Fashion-MNIST test images\n")
EOF
fi

# DICE's CIFAR-10 normalisation, as scripts/train_torchvision.py trained with
$PY code/compare.py --arch resnet18 --weights "$WEIGHTS" --image-size 32 \
    --mean 0.4914,0.4822,0.4465 --std 0.2023,0.1994,0.2010 \
    --sets "folder:$PNGS" folder:data/TIN_crop iSUN Uniform \
    --max-images 2000 --tune-images 200 "$@"
