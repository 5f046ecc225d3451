#!/usr/bin/env bash
# Builds kasim's container images FROM scratch with static binaries:
#   kasim/agentk, kasim/kas, kasim/gitlab-stand-in  (tag: $KASIM_IMAGE_TAG, default dev)
# Static linking: RUSTFLAGS='-C target-feature=+crt-static' with an explicit --target, so build
# scripts and proc macros stay dynamic and only the shipped binaries are static.
# Incremental: a second run only re-stages and re-tags. Needs cargo and a Docker engine; no registry.
set -euo pipefail
cd "$(dirname "$0")/.."
TAG="${KASIM_IMAGE_TAG:-dev}"
TRIPLE="${KASIM_TARGET_TRIPLE:-x86_64-unknown-linux-gnu}"
TARGET_DIR="${CARGO_TARGET_DIR:-target}"

# Two invocations on purpose: building both packages at once would unify their features and
# rebuild the shared dependencies; the stand-in builds without the k3s (Docker client) feature.
RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --locked --target "$TRIPLE" -p kasim-core --bins
RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --locked --target "$TRIPLE" \
  -p kasim-conformance --no-default-features --bin kasim-gitlab-stand-in
BIN_DIR="$TARGET_DIR/$TRIPLE/release"

build() { # image dockerfile binary
  local ctx
  ctx="$(mktemp -d)"
  trap 'rm -rf "$ctx"' RETURN
  cp "$BIN_DIR/$3" "$ctx/$3"
  # ldd prints "statically linked" (exit 0) for static-pie; any "=>" line is a shared library.
  if ldd "$ctx/$3" 2>/dev/null | grep -q '=>'; then
    echo "build-images: $BIN_DIR/$3 is dynamically linked; a FROM scratch image would not start" >&2
    exit 1
  fi
  docker build --quiet -f "conformance/images/$2" -t "$1:$TAG" "$ctx" >/dev/null
  echo "built $1:$TAG"
}
build kasim/agentk agentk.Dockerfile agentk
build kasim/kas kas.Dockerfile kas
build kasim/gitlab-stand-in gitlab-stand-in.Dockerfile kasim-gitlab-stand-in
