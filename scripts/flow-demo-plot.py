"""flow-demo-plot.py CSV PNG [TITLE]: plots a flow-demo timeline.

Top: records per second written into PostgreSQL (and the rate limit, if any).
Middle (adaptive mode only): the adaptive limit on records in flight, and the records in flight.
Bottom: handler latency (p50 and p99 of the batches finished in each sample interval, and the
consumer's own cumulative p99 from statistics()), log scale.
The struggle phase is shaded red, the group joins gray, and the consumer restart marked
(from CSV.events and the phase column).
"""
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def number(text):
    return float(text) if text not in ("", None) else None


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    path, png = sys.argv[1], sys.argv[2]
    title = sys.argv[3] if len(sys.argv) > 3 else "Klife consumer writing into a struggling PostgreSQL"
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    events = {}
    try:
        with open(path + ".events", newline="") as f:
            for row in csv.DictReader(f):
                events[row["event"]] = float(row["time_s"])
    except FileNotFoundError:
        pass
    done = events.get("done")
    if done is not None:
        rows = [r for r in rows if float(r["time_s"]) <= done + 0.6]

    t = [float(r["time_s"]) for r in rows]
    rate = [number(r["records_per_s"]) for r in rows]
    limit = [number(r["rate_limit"]) for r in rows]
    p50 = [number(r["handler_p50_ms"]) for r in rows]
    p99 = [number(r["handler_p99_ms"]) for r in rows]
    stats_p99 = [number(r["stats_handler_p99_ms"]) for r in rows]
    adaptive = [number(r.get("adaptive_limit")) for r in rows]
    in_flight = [number(r.get("in_flight")) for r in rows]
    has_adaptive = any(v is not None for v in adaptive)

    # Spans where the consumer was joining its group (first join, and again after the restart):
    # no batches then, whatever the database does.
    joining = []
    previous = 0.0
    for r in rows:
        now = float(r["time_s"])
        if r["phase"] in ("joining", "restarting"):
            if joining and abs(joining[-1][1] - previous) < 1e-9:
                joining[-1][1] = now
            else:
                joining.append([previous, now])
        previous = now
    # The restart's span starts at the restart itself, not at the sample before it.
    if "restart" in events:
        for span in joining:
            if span[0] < events["restart"] < span[1]:
                span[0] = events["restart"]

    if has_adaptive:
        fig, (top, middle, bottom) = plt.subplots(3, 1, figsize=(10, 8.5), sharex=True,
                                                  gridspec_kw={"height_ratios": [3, 2, 2]})
        panels = (top, middle, bottom)
    else:
        fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6.5), sharex=True,
                                          gridspec_kw={"height_ratios": [3, 2]})
        middle = None
        panels = (top, bottom)
    for ax in panels:
        if "struggle_start" in events and "struggle_end" in events:
            ax.axvspan(events["struggle_start"], events["struggle_end"], color="tab:red", alpha=0.12,
                       label="database struggling" if ax is top else None)
        for i, (start, end) in enumerate(joining):
            ax.axvspan(start, end, color="tab:gray", alpha=0.12,
                       label="joining the group (no batches)" if ax is top and i == 0 else None)
        if "restart" in events:
            ax.axvline(events["restart"], color="tab:gray", linestyle=":",
                       label="consumer closed and reopened" if ax is top else None)
        ax.grid(True, alpha=0.3)

    top.plot(t, rate, color="tab:blue", linewidth=1.6, label="records/s inserted")
    if any(v is not None for v in limit):
        top.plot(t, [v if v is not None else float("nan") for v in limit], color="tab:orange",
                 linestyle="--", label="rate limit")
    top.set_ylabel("records/s into PostgreSQL")
    highest = max([v for v in rate if v is not None] + [v for v in limit if v is not None] + [1])
    top.set_ylim(0, highest * 1.45)
    top.legend(loc="upper left", ncol=3, fontsize=8)
    top.set_title(title, fontsize=11)

    def series(values):
        return [v if v is not None else float("nan") for v in values]

    if middle is not None:
        # Sampled every interval: the limit, and the records in flight at that instant.
        middle.step(t, series(adaptive), where="post", color="tab:orange", linewidth=1.6,
                    label="adaptive limit (records in flight)")
        middle.plot(t, series(in_flight), color="tab:blue", linewidth=0.9, alpha=0.7, marker=".",
                    markersize=3, label="records in flight (sampled)")
        middle.set_ylabel("records in flight")
        most = max([v for v in adaptive if v is not None] + [v for v in in_flight if v is not None] + [1])
        middle.set_ylim(0, most * 1.35)
        middle.legend(loc="upper left", ncol=2, fontsize=8)

    bottom.plot(t, series(p50), color="tab:green", linewidth=1.2, label="handler p50 (per interval)")
    bottom.plot(t, series(p99), color="tab:purple", linewidth=1.2, label="handler p99 (per interval)")
    bottom.plot(t, series(stats_p99), color="tab:gray", linewidth=1, linestyle="--",
                label="p99 from statistics() (cumulative)")
    bottom.set_yscale("log")
    bottom.set_ylabel("handler latency (ms)")
    bottom.set_xlabel("seconds since the consumer started")
    low, high = bottom.get_ylim()
    bottom.set_ylim(low, high * 8)
    bottom.legend(loc="upper left", ncol=3, fontsize=8)

    fig.tight_layout()
    fig.savefig(png, dpi=110)
    print(f"plot: {png}")


if __name__ == "__main__":
    main()
