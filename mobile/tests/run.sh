#!/usr/bin/env bash
# The mobile bindings' tests: builds the library and the `multidriver`
# binary (the tests run its rendezvous point as a real process), generates
# the Python bindings from the built library, and runs mobile/tests/*.py
# through them with Python's unittest. Needs python3 (3.8 or newer; no
# packages beyond the standard library).
#
#   bash mobile/tests/run.sh            # all tests
#   bash mobile/tests/run.sh -k radio   # unittest's own filters
set -euo pipefail
cd "$(dirname "$0")/../.."

command -v python3 >/dev/null || { echo "mobile tests: python3 is required" >&2; exit 1; }

cargo build -q -p multidriver-mobile -p multidriver-cli -p multidriver-uniffi-bindgen
target="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
lib="$target/debug/libmultidriver_mobile.so"
test -f "$lib" || { echo "mobile tests: $lib was not built" >&2; exit 1; }

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
"$target/debug/uniffi-bindgen" generate --library "$lib" --language python --out-dir "$out" >/dev/null
cp "$lib" "$out/"

export MULTIDRIVER_BIN="$target/debug/multidriver"
PYTHONPATH="$out" python3 -m unittest discover -s mobile/tests -p 'test_*.py' -v "$@"
