#!/usr/bin/env bash
# Generates the Kotlin and Swift bindings of multidriver-mobile from the
# built library into mobile/bindings/, with the UniFFI generator pinned in
# mobile/bindgen (the same release as the library's scaffolding).
#
#   bash mobile/bindings.sh           # regenerate mobile/bindings/
#   bash mobile/bindings.sh --check   # fail if mobile/bindings/ is stale
#
# Android: copy bindings/kotlin/ into the app module and the library built
# for each ABI (cargo ndk, or cargo build --target aarch64-linux-android)
# into src/main/jniLibs/<abi>/; the app depends on JNA
# (net.java.dev.jna:jna:5.x@aar). iOS: add bindings/swift/ to the Xcode
# project, with the static library built by
# `cargo rustc -p multidriver-mobile --lib --crate-type staticlib --release
# --target aarch64-apple-ios`. See the README's mobile section.
set -euo pipefail
cd "$(dirname "$0")/.."

check=false
case "${1:-}" in
  --check) check=true ;;
  "") ;;
  *) echo "usage: bash mobile/bindings.sh [--check]" >&2; exit 2 ;;
esac

# The same packages as mobile/tests/run.sh builds: the same feature set, so
# after it this build has nothing to do.
cargo build -q -p multidriver-mobile -p multidriver-cli -p multidriver-uniffi-bindgen
target="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
lib="$target/debug/libmultidriver_mobile.so"

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
for lang in kotlin swift; do
  "$target/debug/uniffi-bindgen" generate "$lib" --language "$lang" --no-format \
    --out-dir "$out/$lang" >/dev/null
done

if $check; then
  if ! diff -r mobile/bindings "$out" >"$out.diff" 2>&1; then
    head -n 40 "$out.diff" >&2
    rm -f "$out.diff"
    echo "mobile/bindings/ is stale: run bash mobile/bindings.sh and commit the result" >&2
    exit 1
  fi
  rm -f "$out.diff"
  echo "mobile/bindings/ matches the library"
else
  rm -rf mobile/bindings
  mkdir -p mobile/bindings
  cp -r "$out/kotlin" "$out/swift" mobile/bindings/
  find mobile/bindings -type f | sort
fi
