#!/usr/bin/env python3
"""Summarises `perf script` output (callchains, Swift symbols already demangled) as markdown.

Usage: perf script -i perf.data -F comm,tid,period,ip,sym,dso | swift-demangle --simplified \
         | perf_summary.py --title klife --cpu-ns-per-record 1600

Prints: where the samples go by thread and by kind of work (reference counting, allocation,
locks, kernel, ...), the top self-time symbols, and for reference counting the callers that
cause it (the value-witness / outlined-copy frame, which names the type being copied, and the
nearest library function, which names the operation). Used by Benchmarks/compare.sh.
"""
import argparse
import collections
import re
import sys

REFCOUNT = {
    "swift_retain", "swift_release", "swift_retain_n", "swift_release_n", "swift_bridgeObjectRetain",
    "swift_bridgeObjectRelease", "swift_bridgeObjectRetain_n", "swift_bridgeObjectRelease_n",
    "swift_unknownObjectRetain", "swift_unknownObjectRelease", "swift_nonatomic_retain", "swift_nonatomic_release",
    "swift_isUniquelyReferenced_nonNull_native", "swift_isUniquelyReferenced_native",
}
ALLOC = re.compile(r"^(malloc|free|cfree|calloc|realloc|_int_malloc|_int_free|__libc_malloc|__libc_free|"
                   r"malloc_consolidate|unlink_chunk|tcache_\w+|_int_realloc|swift_allocObject|swift_slowAlloc|"
                   r"swift_slowDealloc|swift_deallocObject|swift_deallocClassInstance|_swift_release_dealloc|"
                   r"swift_deallocUninitializedObject|_int_free_\w+|__GI___libc_free|__GI___libc_malloc)\b")
LOCKS = re.compile(r"pthread_(mutex|rwlock|cond|spin)|__lll_lock|futex|_?mtx_|cnd_")
MEM = re.compile(r"mem(move|cpy|set|cmp)")
HASH = re.compile(r"Hasher|hashValue|Dictionary|_NativeSet|_NativeDictionary|RawDictionaryStorage|\bSet<|find\(_:hashValue")
RUNTIME = re.compile(r"^swift_(getEnumCase|storeEnumTag|getGenericMetadata|dynamicCast|conformsToProtocol|getAssociated|"
                     r"checkMetadataState|getWitnessTable|projectBox|beginAccess|endAccess|arrayInitWithCopy|arrayDestroy|"
                     r"arrayAssign|getTypeByMangled)")
CRC = re.compile(r"crc32", re.I)

REFCOUNT_PLUMBING = re.compile(r"^(outlined |initializeWithCopy|initializeWithTake|assignWithCopy|assignWithTake|"
                               r"destroy for|value witness|swift_|_swift|specialized _ContiguousArrayBuffer|"
                               r"specialized _copyCollectionToContiguousArray|_ContiguousArrayStorage|"
                               r"specialized Array\.|Array\.|_ArrayBuffer|ContiguousArray|\[unknown\]|merged )")


def category(sym, dso):
    base = sym.split("(")[0].strip() if sym.startswith("swift_") else sym
    if sym in REFCOUNT or base in REFCOUNT:
        return "reference counting (swift_retain/release)"
    if ALLOC.match(sym):
        return "allocation (malloc/free, swift_allocObject)"
    if "kernel" in dso:
        return "kernel (syscalls, scheduling, faults)"
    if "vdso" in dso:
        return "clock reads (vDSO)"
    if LOCKS.search(sym):
        return "locks (pthread mutex/rwlock/cond)"
    if MEM.search(sym):
        return "memcpy/memmove"
    if re.search(r"lz4|zstd|libz\.|snappy", dso, re.I):
        return "compression library"
    if CRC.search(sym):
        return "CRC-32C"
    if HASH.search(sym):
        return "hashing / dictionary lookups"
    if RUNTIME.match(sym):
        return "Swift runtime (enum/metadata/array witnesses)"
    if "libswift_Concurrency" in dso or "libdispatch" in dso:
        return "Swift concurrency runtime (tasks, executors)"
    if "librdkafka" in dso:
        return "librdkafka code"
    if "libswiftCore" in dso:
        return "Swift standard library (other)"
    if dso.endswith("/klife") or dso == "klife":
        return "klife code (encoding, routing, bookkeeping)"
    if "rdkafka_bench" in dso:
        return "benchmark program"
    if "libc" in dso:
        return "libc (other)"
    return "other"


def thread_label(comm):
    if comm.startswith("klife-reactor"):
        return "reactor thread"
    if "qos" in comm or comm.startswith("com.apple"):
        return "producing/consuming task (Swift pool)"
    if comm.startswith("rdk:broker"):
        return "librdkafka broker thread"
    if comm.startswith("rdk:"):
        return "librdkafka " + comm[4:] + " thread"
    if comm in ("rdkafka_bench",):
        return "application thread (produce/poll)"
    if comm == "klife":
        return "main thread"
    return comm


def parse(stream):
    """Yields (comm, period, frames[(sym, dso)]) per sample, leaf first."""
    head = None
    frames = []
    for line in stream:
        line = line.rstrip("\n")
        if not line.strip():
            if head:
                yield head[0], head[1], frames
            head, frames = None, []
            continue
        if not line.startswith((" ", "\t")):
            if head:
                yield head[0], head[1], frames
            parts = line.split()
            # comm may contain spaces; the last two fields are tid and period.
            period = int(parts[-1]) if parts[-1].isdigit() else 1
            comm = " ".join(parts[:-2]) if len(parts) >= 3 else parts[0]
            head, frames = (comm, period), []
            continue
        m = re.match(r"\s*[0-9a-f]+\s+(.*)\s+\((.*)\)\s*$", line)
        if m:
            sym = m.group(1).strip()
            sym = re.sub(r"\+0x[0-9a-f]+$", "", sym)
            frames.append((sym, m.group(2)))
    if head:
        yield head[0], head[1], frames


def short(text, width=95):
    text = re.sub(r"\s+", " ", text)
    return text if len(text) <= width else text[: width - 1] + "…"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--title", default="process")
    ap.add_argument("--cpu-ns-per-record", type=float, default=None,
                    help="measured CPU ns/record, to turn shares into approximate ns/record")
    ap.add_argument("--top", type=int, default=15)
    args = ap.parse_args()

    total = 0
    by_thread = collections.Counter()
    by_cat = collections.Counter()
    by_thread_cat = collections.Counter()
    by_sym = collections.Counter()
    rc_type = collections.Counter()
    rc_op = collections.Counter()
    rc_total = 0
    for comm, period, frames in parse(sys.stdin):
        if not frames:
            continue
        total += period
        t = thread_label(comm)
        sym, dso = frames[0]
        c = category(sym, dso)
        by_thread[t] += period
        by_cat[c] += period
        by_thread_cat[(t, c)] += period
        by_sym[(t, short(sym, 80))] += period
        if c.startswith("reference counting"):
            rc_total += period
            caller = frames[1][0] if len(frames) > 1 else "?"
            rc_type[short(caller, 80)] += period
            op = next((s for s, d in frames[1:] if not REFCOUNT_PLUMBING.match(s) and "libswiftCore" not in d
                       and "[unknown]" not in s), "?")
            rc_op[(t, short(op, 80))] += period
    if total == 0:
        print("(no samples)")
        return

    def pct(v):
        return f"{100.0 * v / total:.1f} %"

    def ns(v):
        if args.cpu_ns_per_record is None:
            return ""
        return f" | ≈ {args.cpu_ns_per_record * v / total:,.0f}"

    threads = [t for t, _ in by_thread.most_common()]
    nscol = " | ≈ ns/record" if args.cpu_ns_per_record is not None else ""
    nsalign = " | ---:" if args.cpu_ns_per_record is not None else ""
    print(f"**{args.title}: samples by kind of work** (leaf frame; {total // 250000 if total > 250000 else total} samples"
          f"{'; ns/record = share × measured CPU/record' if args.cpu_ns_per_record is not None else ''})\n")
    header = "| kind of work | all threads | " + " | ".join(threads) + nscol + " |"
    print(header)
    print("| --- | ---: | " + " | ".join("---:" for _ in threads) + nsalign + " |")
    for c, v in by_cat.most_common():
        if v * 200 < total:  # below 0.5 %
            continue
        cells = [pct(by_thread_cat[(t, c)]) for t in threads]
        print(f"| {c} | {pct(v)} | " + " | ".join(cells) + ns(v) + " |")
    cells = [pct(by_thread[t]) for t in threads]
    print(f"| **total** | 100 % | " + " | ".join(cells) + (f" | ≈ {args.cpu_ns_per_record:,.0f}" if args.cpu_ns_per_record is not None else "") + " |")
    print()
    print(f"**{args.title}: top symbols by self time**\n")
    print("| share | thread | symbol |")
    print("| ---: | --- | --- |")
    for (t, s), v in by_sym.most_common(args.top):
        print(f"| {pct(v)} | {t} | `{s}` |")
    print()
    if rc_total * 20 >= total:
        print(f"**{args.title}: what the reference counting ({pct(rc_total)} of samples) is for**\n")
        print("Immediate caller of swift_retain/release (a value witness or outlined copy names the type being copied):\n")
        print("| share | caller |")
        print("| ---: | --- |")
        for s, v in rc_type.most_common(10):
            print(f"| {pct(v)} | `{s}` |")
        print()
        print("Nearest library function above it (the operation doing the copying):\n")
        print("| share | thread | function |")
        print("| ---: | --- | --- |")
        for (t, s), v in rc_op.most_common(12):
            print(f"| {pct(v)} | {t} | `{s}` |")
        print()


if __name__ == "__main__":
    main()
