#!/usr/bin/env bash
# Seeds fuzz/corpus/<target> from what the project ships: scenarios,
# profiles, route sets, a rendezvous config and a route snapshot kept by
# the tests. The other targets build their inputs from raw bytes.
# Idempotent: files are named by their content's hash.
set -euo pipefail
cd "$(dirname "$0")"
add() { # add TARGET FILE...
  local t="$1"; shift
  mkdir -p "corpus/$t"
  for f in "$@"; do
    [ -f "$f" ] || continue
    cp "$f" "corpus/$t/seed-$(sha1sum "$f" | cut -c1-16)"
  done
}
add scenario_toml ../scenarios/*.toml
add profile_toml ../profiles/*.toml ../examples/routes/*.toml
add rendezvous_config seeds/rendezvous_config/*
add route_memory ../engine/core/tests/data/*.mdrm
echo "corpora seeded: $(ls corpus | wc -l) targets"
