#!/usr/bin/env python3
"""Markdown for the reactor-scaling case of compare.sh (`--scaling`).

    reactor_scaling_table.py RAW THREADS SINK_CPU NODES

RAW holds one "CASE<TAB>RUN<TAB>JSON" line per run, CASE being "scale-MODE-VARIANT"
(VARIANT: r1, r2, r2-pinned, librdkafka). THREADS holds "CASE<TAB>RUN<TAB>THREAD<TAB>NS"
lines (each client's --threads output), SINK_CPU "CASE<TAB>RUN<TAB>NS" lines (CPU the
sink used during the run). Prints the "Reactor scaling" section of the generated block.
"""
import json
import statistics
import sys
from collections import defaultdict

VARIANTS = (
    ("r1", "klife, 1 reactor"),
    ("r2", "klife, 2 reactors"),
    ("r2-pinned", "klife, 2 reactors pinned to CPUs 0 and 1"),
    ("librdkafka", "librdkafka (reference)"),
)
MODES = (
    ("produce", "produce 100 B, 6 partitions, acks all, idempotent, linger 5 ms"),
    ("consume", "consume 100 B, 6 partitions (klife fetch loop; librdkafka assign)"),
)


def median(values):
    return statistics.median(values) if values else None


def fmt(value, digits=0):
    return "—" if value is None else f"{value:,.{digits}f}"


def ratio(a, b):
    return "—" if a is None or not b else f"{a / b:.2f}×"


def main():
    raw_path, threads_path, sink_path, nodes = sys.argv[1:5]
    runs = defaultdict(list)          # case -> [json]
    for line in open(raw_path):
        case, run, text = line.rstrip("\n").split("\t", 2)
        runs[case].append(json.loads(text))
    threads = defaultdict(lambda: defaultdict(list))   # case -> thread -> [ns/record]
    records_of = {}
    for case, rs in runs.items():
        for r in rs:
            if not r.get("failed"):
                records_of[case] = r["records"]
    for line in open(threads_path):
        case, run, name, ns = line.rstrip("\n").split("\t")
        if records_of.get(case):
            threads[case][name].append(int(ns) / records_of[case])
    sink_cpu = defaultdict(list)
    for line in open(sink_path):
        case, run, ns = line.rstrip("\n").split("\t")
        if records_of.get(case):
            sink_cpu[case].append(int(ns) / records_of[case])
    if not runs:
        return

    out = [f"### Reactor scaling (sink broker, {nodes} nodes)", ""]
    out.append(f"`klife-sink --nodes {nodes}`: partition p is led by node p mod {nodes}, so with `-X reactors=2` "
               "each reactor owns one broker connection and three partitions. *vs 1 reactor* divides by the "
               "1-reactor row of the same workload (throughput: above 1 is better; CPU: below 1 is better). "
               "*sink CPU* is the sink process's CPU over the whole run (warm-up included) per measured record. "
               "*CPU per thread* is each client's `--threads` output (medians, ns per measured record; "
               "threads under 1 ns/record left out).")
    out.append("")
    out.append("| workload | client | runs | rec/s | vs 1 reactor | CPU ns/rec | vs 1 reactor | sink CPU ns/rec | CPU per thread (ns/rec) |")
    out.append("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for mode, title in MODES:
        base_rate = base_cpu = None
        for variant, label in VARIANTS:
            case = f"scale-{mode}-{variant}"
            if case not in runs:
                continue
            good = [r for r in runs[case] if not r.get("failed")]
            failed = len(runs[case]) - len(good)
            rate = median([r["records_per_sec"] for r in good])
            cpu = median([r["cpu_ns_per_record"] for r in good])
            if variant == "r1":
                base_rate, base_cpu = rate, cpu
            is_klife = variant != "librdkafka"
            split = sorted(((name, median(v)) for name, v in threads[case].items()), key=lambda kv: -kv[1])
            split_text = ", ".join(f"{name} {value:.0f}" for name, value in split if value >= 1) or "—"
            out.append("| " + " | ".join([
                title, label, f"{len(good)}" + (f" ({failed} failed)" if failed else ""),
                fmt(rate), ratio(rate, base_rate) if is_klife and variant != "r1" else "—",
                fmt(cpu), ratio(cpu, base_cpu) if is_klife and variant != "r1" else "—",
                fmt(median(sink_cpu[case])), split_text,
            ]) + " |")
    out.append("")
    print("\n".join(out))


if __name__ == "__main__":
    main()
