#!/usr/bin/env bash
# Create .venv with the pinned requirements and the oodbench package (editable), and
# Fashion-MNIST from Debian when apt is there.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist) \
    || echo "note: could not install dataset-fashion-mnist; the setup will try its original URL"
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q -r requirements.txt
# the package itself, editable: `import oodbench` from anywhere (setuptools from requirements)
.venv/bin/pip install -q --no-deps --no-build-isolation -e .
