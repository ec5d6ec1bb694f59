#!/usr/bin/env bash
# Builds AISIX (api7/aisix), a peer Rust gateway `cargo bench --bench peers`
# measures switchyard against, on a machine that reaches package registries
# but not GitHub or Hugging Face.
#
# Run: bench/aisix-build.sh AISIX_SRC
#   AISIX_SRC  api7/aisix at a release tag (measured: v0.10.0, August 2026)
# Prints the binary's path. Changes nothing in the copy. Builds the `aisix`
# binary with its release profile (fat LTO, one codegen unit, jemalloc)
# and one difference from its image: without the default feature
# `local-model-guardrail`, whose ONNX Runtime the `ort` crate downloads at
# build time from a CDN this machine cannot reach. That feature only runs
# for a semantic guardrail row, which the bench does not configure (its
# own Cargo.toml: "nothing runs (and no model memory is spent) until a row
# exists"). The image's
# profile-guided build is not done here, as the bench's switchyard is not
# profile-guided either. AISIX pins Rust 1.93.1 (rust-toolchain.toml);
# when that toolchain is not installed the build uses the default one.
# It needs protoc (apt-get install protobuf-compiler, done here when
# missing) and takes some 20 minutes on 2 cores.
set -euo pipefail

[ $# -ge 1 ] || { sed -n 2,20p "$0"; exit 2; }
src=$(cd "$1" && pwd)
command -v protoc >/dev/null || apt-get install -y -q protobuf-compiler >/dev/null

cd "$src"
pinned=$(sed -n 's/^channel = "\(.*\)"/\1/p' rust-toolchain.toml 2>/dev/null || true)
if [ -n "$pinned" ] && ! rustup toolchain list | grep -q "^$pinned"; then
    export RUSTUP_TOOLCHAIN
    RUSTUP_TOOLCHAIN=$(rustup default | cut -d' ' -f1)
    echo "aisix-build: Rust $pinned is not installed; building with $RUSTUP_TOOLCHAIN" >&2
fi
cargo build --locked --release -p aisix-server --no-default-features --bin aisix >&2
echo "${CARGO_TARGET_DIR:-$src/target}/release/aisix"
