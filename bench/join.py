"""Joins Go's and criterion's results into one markdown table (bench/compare.sh)."""
import datetime
import json
import pathlib
import re
import statistics
import sys

out, rounds, go_version, rustc, cpu, cores = sys.argv[1:7]
out = pathlib.Path(out)
rounds = int(rounds)


def median(values):
    return statistics.median(values) if values else None


go_rounds = {}
ours_rounds, tokio_rounds = {}, {}
for r in range(1, rounds + 1):
    d = out / f"round.{r}"
    for line in (d / "go.txt").read_text().splitlines() + (d / "go_scale.txt").read_text().splitlines():
        m = re.match(r"Benchmark(\S+?)(-\d+)?\s+\d+\s+([\d.]+) ns/op", line)
        if m:
            name = m.group(1)
            name = name.replace("Scale_FanOutWake_waiters_100000", "Scale/FanOutWake/waiters=100000")
            name = name.replace("Scale_CancelTree_nodes_1001001", "Scale/CancelTree/nodes=1001001")
            name = name.replace("CommonParentCancel_spin_only", "CommonParentCancel/spin-only")
            name = name.replace("DeepValueNewGoRoutine_spawn_only", "DeepValueNewGoRoutine/spawn-only")
            name = name.replace("DeepValueHit_depth_100", "DeepValueHit/depth=100")
            name = name.replace("DeepValueHit_cancel_chain_100", "DeepValueHit/cancel-chain=100")
            go_rounds.setdefault(name, []).append(float(m.group(3)))
    for bench in (d / "criterion").glob("**/new/benchmark.json"):
        full_id = json.loads(bench.read_text())["full_id"]
        # The median of each run (robust to a burst inside one run), then the
        # median across rounds.
        value = json.loads((bench.parent / "estimates.json").read_text())["median"]["point_estimate"]
        if "tokio_util/" in full_id:
            tokio_rounds.setdefault(full_id.replace("tokio_util/", ""), []).append(value)
        else:
            ours_rounds.setdefault(full_id, []).append(value)

go = {k: median(v) for k, v in go_rounds.items()}
ours = {k: median(v) for k, v in ours_rounds.items()}
tokio = {k: median(v) for k, v in tokio_rounds.items()}

memory = {}
for line in (out / "memory.txt").read_text().splitlines() + (out / "round.1" / "go_scale.txt").read_text().splitlines():
    m = re.search(r"MemoryPerChild/(\w+) ([\d.]+)", line)
    if m:
        memory[m.group(1)] = float(m.group(2))


def fmt(ns):
    if ns is None:
        return "n/a"
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.3g} ns"


def order(name):
    names = list(go)
    return (names.index(name) if name in names else len(names), name)


print(f"Run {datetime.date.today()}, {cores} cores ({cpu}); {go_version}; {rustc}.")
print(f"Times are medians of {rounds} interleaved rounds: ns/op (Go) and criterion medians (ctx, tokio-util); ratio = Go / ctx.")
print()
print("| benchmark | Go | ctx | tokio-util | Go/ctx | target |")
print("| --- | ---: | ---: | ---: | ---: | --- |")
for name in sorted(set(go) | set(ours), key=order):
    g, c, t = go.get(name), ours.get(name), tokio.get(name)
    ratio = f"{g / c:.2f}" if g and c else "n/a"
    verdicts = []
    if name.endswith(("/serial", "/spin-only", "/spawn-only", "/spawn-arc")):
        verdicts.append("diagnostic, no target")
    elif name.startswith("Scale/"):
        if g and c:
            verdicts.append("ahead of Go" if c < g else "BEHIND Go")
        if t and c:
            verdicts.append("ahead of tokio-util" if c < t else "BEHIND tokio-util")
    else:
        if g and c:
            verdicts.append("met" if g / c >= 2.0 else "MISSED (<2x)")
        if t and c:
            verdicts.append("≤ tokio-util" if c <= t else "SLOWER than tokio-util")
    print(f"| {name} | {fmt(g)} | {fmt(c)} | {fmt(t)} | {ratio} | {'; '.join(verdicts)} |")

g, c, t = memory.get("go"), memory.get("ctx"), memory.get("tokio_util")
if g and c:
    verdict = "met" if c <= g / 2 else "MISSED (> half of Go)"
    tt = f"{t:.1f} B" if t else "n/a"
    print(f"| MemoryPerChild (bytes per live cancelable child) | {g:.1f} B | {c:.1f} B | {tt} | {g / c:.2f} | {verdict} |")
