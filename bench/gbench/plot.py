#!/usr/bin/python3
"""Draws results.json as a PNG: TCP throughput, RTT under load and 64-byte packet rate per
system (bars = median over rounds, whiskers = min–max).

Run by bench/run.py with Debian's /usr/bin/python3 (python3-matplotlib); also usable alone:
    /usr/bin/python3 bench/gbench/plot.py bench/results/<run>/results.json out.png
"""

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def series(summary, names, key):
    med, lo, hi = [], [], []
    for n in names:
        m = summary[n].get(key)
        if m:
            med.append(m["median"])
            lo.append(m["median"] - m["min"])
            hi.append(m["max"] - m["median"])
        else:
            med.append(0)
            lo.append(0)
            hi.append(0)
    return med, [lo, hi]


def main(src, dst):
    with open(src) as f:
        data = json.load(f)
    summary = data["summary"]
    names = [n for n in summary if summary[n].get("ok_rounds")]
    if not names:
        print("plot: nothing measured", file=sys.stderr)
        return 1
    x = list(range(len(names)))
    fig, axes = plt.subplots(3, 1, figsize=(max(8, 1.1 * len(names) + 3), 11))
    w = 0.38

    # The bare veth is an order of magnitude above every tunnel: it would flatten the bars,
    # so it is written into the title instead of drawn.
    ax = axes[0]
    tunnels = [n for n in names if n != "veth"]
    tx = list(range(len(tunnels)))
    for off, key, label in ((-w / 2, "tcp1_gbps", "1 stream"), (w / 2, "tcp4_gbps", "4 streams")):
        med, err = series(summary, tunnels, key)
        ax.bar([i + off for i in tx], med, w, yerr=err, capsize=3, label=label)
    ax.set_ylabel("TCP throughput, Gb/s")
    title = "TCP throughput through the tunnel (iperf3, client → gateway)"
    veth = summary.get("veth", {})
    if veth.get("tcp1_gbps"):
        title += (f"\nbare veth ceiling (not drawn): {veth['tcp1_gbps']['median']:.1f} Gb/s "
                  f"with 1 stream, {veth.get('tcp4_gbps', {}).get('median', 0):.1f} with 4")
    ax.set_title(title)
    ax.set_xticks(tx)
    ax.set_xticklabels(tunnels, rotation=20, ha="right")
    ax.legend()

    ax = axes[1]
    for off, key, label in ((-w / 2, "load_mean_ms", "mean"), (w / 2, "load_p99_ms", "p99")):
        med, err = series(summary, names, key)
        ax.bar([i + off for i in x], med, w, yerr=err, capsize=3, label=label)
    med, _ = series(summary, names, "load_max_ms")
    ax.scatter(x, med, marker="_", s=300, color="black", label="max", zorder=3)
    med, _ = series(summary, names, "idle_mean_ms")
    ax.scatter(x, med, marker="o", color="green", label="idle mean", zorder=3)
    ax.set_yscale("log")
    ax.set_ylabel("ping RTT, ms (log)")
    ax.set_title("RTT while a one-stream TCP bulk transfer runs through the same tunnel "
                 "(lost pings not included)")
    ax.legend()

    ax = axes[2]
    med, err = series(summary, names, "udp64_kpps")
    ax.bar(x, med, 0.6, yerr=err, capsize=3, color="tab:purple")
    ax.set_ylabel("k packets/s delivered")
    ax.set_title("64-byte UDP packets (iperf3 -u -l 64 -b 0)")

    for ax in axes[1:]:
        ax.set_xticks(x)
        ax.set_xticklabels(names, rotation=20, ha="right")
        ax.grid(axis="y", alpha=0.3)
    meta = data.get("meta", {})
    fig.suptitle(f"grelay benchmark — {meta.get('date', '')}, {meta.get('cpu', '')}, "
                 f"{meta.get('rounds', '?')} round(s){' (quick)' if meta.get('quick') else ''}; "
                 "shared machine: noisy", fontsize=10)
    fig.tight_layout()
    fig.savefig(dst, dpi=110)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
