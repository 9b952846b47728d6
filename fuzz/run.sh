#!/usr/bin/env bash
# Builds the fuzz targets with libFuzzer (a nightly toolchain; the same
# instrumentation `cargo fuzz build` uses, with overflow checks and debug
# assertions on) and runs them.
#
#   bash fuzz/run.sh                      # every target, 60 s each
#   bash fuzz/run.sh -t 3600              # every target, an hour each
#   bash fuzz/run.sh -t 600 core_sequence rendezvous_service
#   bash fuzz/run.sh -n 10000000 -t 7200 core_sequence   # 10 M executions, at most 2 h
#   (-t 0: no time limit)
#
# It exits non-zero when a target crashed (as .ci/run relies on).
# Corpora live in fuzz/corpus/<target> (seeded from the shipped files by
# fuzz/seed.sh; what a run finds is added there), crashes in
# fuzz/artifacts/<target>. Each target prints libFuzzer's final line
# (executions, rate, coverage); the summary table is printed at the end.
# Needs: a nightly toolchain (`rustup toolchain list`); cargo-fuzz is not
# needed, but `cargo +nightly fuzz run <target>` works on this folder too.
set -euo pipefail
script="$(readlink -f "$0")"
cd "$(dirname "$script")"

seconds=60
max_runs=""
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    -t) seconds="${2:?fuzz/run.sh: -t needs a number of seconds}"; shift 2 ;;
    -n) max_runs="${2:?fuzz/run.sh: -n needs a number of executions}"; shift 2 ;;
    -h|--help) sed -n 2,18p "$script"; exit 0 ;;
    -*) echo "fuzz/run.sh: unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(ls fuzz_targets | sed -n 's/\.rs$//p')
fi
for v in "$seconds" "${max_runs:-1}"; do
  [[ "$v" =~ ^[0-9]+$ ]] || { echo "fuzz/run.sh: -t and -n take a whole number, not '$v'" >&2; exit 2; }
done
for t in "${targets[@]}"; do
  [ -f "fuzz_targets/$t.rs" ] || { echo "fuzz/run.sh: no target $t (see fuzz/fuzz_targets)" >&2; exit 2; }
done

rustup run nightly rustc --version >/dev/null 2>&1 ||
  { echo "fuzz/run.sh: a nightly toolchain is required (rustup toolchain install nightly)" >&2; exit 1; }

target_dir="${CARGO_TARGET_DIR:-$(pwd)/target}"
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
echo "== building ${#targets[@]} fuzz target(s)"
bins=()
for t in "${targets[@]}"; do bins+=(--bin "$t"); done
# An explicit --target keeps the flags off build scripts and proc macros.
host="$(rustup run nightly rustc -vV | sed -n 's/^host: //p')"
CARGO_TARGET_DIR="$target_dir" cargo +nightly build -q --release --target "$host" "${bins[@]}"
bin_dir="$target_dir/$host/release"

bash seed.sh >/dev/null
summary="$(mktemp)"
pid=""
# A stopped script stops its fuzzer too (with -t 0 it would run forever).
trap 'if [ -n "$pid" ]; then kill "$pid" 2>/dev/null; fi; rm -f "$summary"' EXIT
trap 'exit 130' INT TERM HUP
failed=0
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t"
  if [ "$seconds" -eq 0 ]; then limit="no time limit"; else limit="${seconds} s"; fi
  echo "== $t: ${limit}${max_runs:+, at most $max_runs executions}"
  log="$(mktemp)"
  set +e
  "$bin_dir/$t" "corpus/$t" -max_total_time="$seconds" ${max_runs:+-runs="$max_runs"} -rss_limit_mb=2048 \
    -max_len=65536 -timeout=10 -artifact_prefix="artifacts/$t/" -print_final_stats=1 >"$log" 2>&1 &
  pid=$!
  # Progress on long runs: libFuzzer's latest status line every 5 minutes.
  waited=0
  while kill -0 "$pid" 2>/dev/null; do
    sleep 1
    waited=$((waited + 1))
    if [ $((waited % 300)) -eq 0 ]; then
      # libFuzzer prints a line when it finds something (and at powers of
      # two): the count is as of that line, not of now.
      last="$({ grep -E '^#[0-9]+' "$log" || true; } | tail -1 | cut -c1-100)"
      echo "   after ${waited} s, libFuzzer's latest line: ${last:-none yet}"
    fi
  done
  wait "$pid"
  rc=$?
  pid=""
  set -e
  { grep -E '^#[0-9]+.*(DONE|INITED|pulse)' "$log" || true; } | tail -1
  runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")"
  rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")"
  cov="$({ grep -oE 'cov: [0-9]+' "$log" || true; } | tail -1 | cut -d' ' -f2)"
  if [ "$rc" -ne 0 ]; then
    failed=1
    cp "$log" "artifacts/$t/log.txt"
    echo "!! $t crashed (exit $rc); its input and log are in fuzz/artifacts/$t/:"
    { grep -E -A4 'panicked|ERROR: libFuzzer|SUMMARY|Test unit written' "$log" || true; } | head -24
  fi
  printf '%-22s %14s %10s %8s %s\n' "$t" "${runs:-?}" "${rate:-?}" "${cov:-?}" \
    "$([ "$rc" -eq 0 ] && echo ok || echo CRASH)" >>"$summary"
  rm -f "$log"
done
printf '\n%-22s %14s %10s %8s %s\n' target executions "exec/s" cov result
cat "$summary"
if [ "$failed" -ne 0 ]; then
  echo "fuzz/run.sh: a target crashed; turn the input into a regression test" >&2
  exit 1
fi
