#!/usr/bin/env bash
# Builds agentgateway, the peer Rust gateway `cargo bench --bench peers`
# measures switchyard against, on a machine that reaches package
# registries but not GitHub: agentgateway's Cargo.toml takes crates from
# forks on GitHub and GitLab ([patch.crates-io]).
#
# Run: bench/agentgateway-build.sh AGENTGATEWAY_SRC [GOOGLE_CLOUD_RUST_SRC]
#   AGENTGATEWAY_SRC       agentgateway at tag v1.1.0 (Cargo.toml, Cargo.lock,
#                          .cargo/, crates/, tools/report_build_info.sh)
#   GOOGLE_CLOUD_RUST_SRC  only for releases that take google-cloud-auth
#                          from git (v1.2.0 and later): googleapis/
#                          google-cloud-rust at the revision they pin
# Prints the binary's path. Changes the copy's Cargo.toml only:
#   - the forks of schemars and wiremock give way to the crates.io releases
#     of the same versions; schemars' fork-only `arcstr1` feature is
#     dropped (only the optional `schema` feature, off here, derives
#     schemas) and so is wiremock's `tls` (tests only);
#   - http-serde is crates.io's 2.1.1 (copied to target/http-serde) with
#     the modules of the fork agentgateway uses: `scheme` and
#     `option::scheme` (v1.1.0 on), `header_name` (v1.3.1), each a type of
#     the `http` crate as a string (bench/http-serde-modules.patch);
#   - google-cloud-auth, when taken from git, comes from
#     GOOGLE_CLOUD_RUST_SRC.
# Built and measured: v1.1.0, and v1.3.1 (which takes google-cloud-auth
# from git as well: GOOGLE_CLOUD_RUST_SRC at 58058110bf9a). v1.4.0 and
# v1.4.1 also take async-openai from a fork whose additions no crates.io
# release has (v1.4.1 fails with 31 errors against async-openai 0.42.2, 55
# against 0.41.3), so they do not build without changing their code.
# The build is the one agentgateway ships: its release profile (fat LTO,
# one codegen unit) and default features (jemalloc, aws-lc). It needs
# protoc (apt-get install protobuf-compiler, done here when missing) and
# takes some 40 minutes on 2 cores.
set -euo pipefail

[ $# -ge 1 ] || { sed -n 2,32p "$0"; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$1" && pwd)
gcr=$(cd "${2:-.}" && pwd)
command -v protoc >/dev/null || apt-get install -y -q protobuf-compiler >/dev/null

cd "$src"
python3 - "$gcr" <<'EOF'
import re, sys
gcr = sys.argv[1]
s = open("Cargo.toml").read()
s = re.sub(r'\[patch\.crates-io\]\n(?:.*\n)*?\n', '', s, count=1)
s = re.sub(r'google-cloud-auth = \{ git = "[^"]+", rev = "[0-9a-f]+",',
           f'google-cloud-auth = {{ path = "{gcr}/src/auth",', s)
s = re.sub(r'(schemars = \{ version = "=[0-9.]+"), git = "[^"]+", rev = "[0-9a-f]+"', r'\1', s)
s = s.replace('    "arcstr1",\n', '')
s = s.replace('wiremock = { version = "0.6", features = ["tls"] }', 'wiremock = { version = "0.6" }')
open("Cargo.toml", "w").write(s)
EOF
cargo fetch >&2
registry=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/http-serde-2.1.1 | head -1)
rm -rf target/http-serde && mkdir -p target && cp -r "$registry" target/http-serde
patch -s -d target/http-serde -p1 < "$here/http-serde-modules.patch"
grep -q 'path = "target/http-serde"' Cargo.toml ||
    printf '\n[patch.crates-io]\nhttp-serde = { path = "target/http-serde" }\n' >> Cargo.toml
if grep -q 'git = "' Cargo.toml; then
    echo "a git dependency is left in Cargo.toml:" >&2
    grep -n 'git = "' Cargo.toml >&2
    exit 1
fi
VERSION=${VERSION:-v1.1.0} GIT_REVISION=${GIT_REVISION:-v1.1.0} \
    cargo build --release -p agentgateway-app >&2
echo "${CARGO_TARGET_DIR:-$src/target}/release/agentgateway"
