#!/usr/bin/env bash
# The profile-guided release build: what the container image ships.
#
# Run: deploy/pgo-build.sh        -> target/pgo/switchyard
#
# Three steps, about 12 minutes on 2 cores:
#   1. the gateway built with -Cprofile-generate (target/pgo/gen);
#   2. bench/pgo_train.rs drives it on 127.0.0.1 through the paths it runs
#      in production (chat, embeddings, cache hits, streams, Messages and
#      Responses translated, big and fanned-out batches, refusals) and stops
#      it, which writes the profile; the trainer fails if any answer is wrong;
#   3. the gateway built again with -Cprofile-use on the merged profile
#      (target/pgo/use), copied to target/pgo/switchyard, which then answers
#      a tenth of the training mix as a last check.
# The build is otherwise `cargo build --release --locked`: the same code, the
# same whole-program optimisation. docs/benchmarks.md has what it changes.
#
# Needs rustup's llvm-tools (for llvm-profdata of the compiler's own LLVM);
# it is added when missing. PGO_TRAIN_SCALE multiplies the training counts.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/target/pgo
host=$(rustc -vV | sed -n 's/^host: //p')
PROFDATA=$(rustc --print sysroot)/lib/rustlib/$host/bin/llvm-profdata
if ! [ -x "$PROFDATA" ]; then
    rustup component add llvm-tools
fi
rm -rf "$OUT/profiles"
mkdir -p "$OUT/profiles"

echo "== 1/3: the instrumented build" >&2
RUSTFLAGS="-Cprofile-generate=$OUT/profiles" \
    cargo build --release --locked --target-dir "$OUT/gen"

echo "== 2/3: the training run" >&2
# The trainer itself needs no optimising: the dev profile.
SWITCHYARD_BIN=$OUT/gen/release/switchyard \
    cargo bench --locked --profile dev --bench pgo_train
if ! ls "$OUT"/profiles/*.profraw >/dev/null 2>&1; then
    echo "the training run wrote no profile (did the gateway exit cleanly?)" >&2
    exit 1
fi
"$PROFDATA" merge -o "$OUT/merged.profdata" "$OUT"/profiles/*.profraw

echo "== 3/3: the optimised build" >&2
RUSTFLAGS="-Cprofile-use=$OUT/merged.profdata" \
    cargo build --release --locked --target-dir "$OUT/use"
cp "$OUT/use/release/switchyard" "$OUT/switchyard"

# The binary that ships answers the whole training mix as it should.
SWITCHYARD_BIN=$OUT/switchyard PGO_TRAIN_SCALE=0.1 \
    cargo bench --locked --profile dev --bench pgo_train
echo "built $OUT/switchyard" >&2
