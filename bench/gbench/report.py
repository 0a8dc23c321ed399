"""Summaries (median and spread over rounds) and the Markdown tables."""

import statistics

# (key in a run, path into the run's dict)
METRICS = {
    "tcp1_gbps": ("tcp1", "gbps"),
    "tcp4_gbps": ("tcp4", "gbps"),
    "tcp1_retransmits": ("tcp1", "retransmits"),
    "udp64_kpps": ("udp64", "delivered_pps"),
    "udp64_loss_percent": ("udp64", "lost_percent"),
    "idle_mean_ms": ("ping_idle", "mean_ms"),
    "idle_p99_ms": ("ping_idle", "p99_ms"),
    "idle_max_ms": ("ping_idle", "max_ms"),
    "load_mean_ms": ("ping_load", "mean_ms"),
    "load_p99_ms": ("ping_load", "p99_ms"),
    "load_max_ms": ("ping_load", "max_ms"),
    "load_loss_percent": ("ping_load", "loss_percent"),
    "load_bulk_gbps": ("ping_load", "bulk_gbps"),
    "cpu_tunnel_s_per_gb": ("tcp1", "cpu_s_per_gb_tunnel"),
    "cpu_total_s_per_gb": ("tcp1", "cpu_s_per_gb_total"),
    "cpu_machine_s_per_gb": ("tcp1", "cpu_s_per_gb_machine"),
}


def _get(run, path):
    v = run
    for k in path:
        if not isinstance(v, dict) or k not in v:
            return None
        v = v[k]
    if v is None:
        return None
    if path[-1] == "delivered_pps":
        v = v / 1000.0
    return v


def summarize(runs, order):
    out = {}
    for name in order:
        rs = [r for r in runs if r["system"] == name]
        ok = [r for r in rs if r.get("ok")]
        s = {"rounds": len(rs), "ok_rounds": len(ok),
             "errors": [r.get("error") for r in rs if not r.get("ok") and r.get("error")],
             "skipped": next((r.get("skipped") for r in rs if r.get("skipped")), None),
             "label": rs[0].get("label") if rs else name,
             "cipher": rs[0].get("cipher") if rs else None}
        for key, path in METRICS.items():
            vals = [v for v in (_get(r, path) for r in ok) if v is not None]
            if vals:
                s[key] = {"median": statistics.median(vals), "min": min(vals),
                          "max": max(vals), "n": len(vals)}
        out[name] = s
    return out


def _fmt(x, digits=2):
    if x is None:
        return "–"
    if abs(x) >= 100:
        return f"{x:.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.{digits}f}"


def _med(s, key, digits=2):
    return _fmt(s[key]["median"], digits) if key in s else "–"


def _spread(s, key, digits=2):
    if key not in s:
        return "–"
    m = s[key]
    if m["n"] < 2:
        return _fmt(m["median"], digits)
    return f"{_fmt(m['min'], digits)}–{_fmt(m['max'], digits)}"


def systems_table(summary, ref="grelay"):
    ref_tcp = summary.get(ref, {}).get("tcp1_gbps", {}).get("median")
    ref_load = summary.get(ref, {}).get("load_mean_ms", {}).get("median")
    lines = [
        "| system | cipher | TCP 1 stream Gb/s | TCP 4 streams Gb/s | 64 B UDP kpps delivered "
        "| RTT idle mean / p99 ms | RTT under bulk TCP mean / p99 / max ms | pings lost under load "
        "| CPU s/GB tunnel / all | TCP 1 vs grelay | RTT under load vs grelay |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, s in summary.items():
        if s.get("skipped") or not s["ok_rounds"]:
            why = s.get("skipped") or "; ".join(e.splitlines()[0] for e in s["errors"][:1])
            why = (why or "failed").replace("|", "/")[:160]
            lines.append(f"| {name} | *not measured: {why}* | " + " | ".join(["–"] * 9) + " |")
            continue
        tcp = s.get("tcp1_gbps", {}).get("median")
        load = s.get("load_mean_ms", {}).get("median")
        rel_tcp = f"{tcp / ref_tcp:.2f}×" if tcp and ref_tcp and name != "veth" else "–"
        rel_load = f"{load / ref_load:.2f}×" if load and ref_load and name != "veth" else "–"
        cpu = "–" if name == "veth" else _med(s, "cpu_tunnel_s_per_gb")
        lines.append(
            f"| {name} | {s.get('cipher') or '–'} | {_med(s, 'tcp1_gbps')} | {_med(s, 'tcp4_gbps')} "
            f"| {_med(s, 'udp64_kpps', 0)} "
            f"| {_med(s, 'idle_mean_ms')} / {_med(s, 'idle_p99_ms')} "
            f"| {_med(s, 'load_mean_ms')} / {_med(s, 'load_p99_ms')} / {_med(s, 'load_max_ms')} "
            f"| {_med(s, 'load_loss_percent', 0)} % "
            f"| {cpu} / {_med(s, 'cpu_total_s_per_gb')} | {rel_tcp} | {rel_load} |")
    return "\n".join(lines)


def spread_table(summary):
    lines = [
        "| system | rounds ok | TCP 1 | TCP 4 | 64 B kpps | RTT idle mean | RTT load mean "
        "| RTT load p99 | RTT load max | retransmits (1 stream) | CPU s/GB all |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, s in summary.items():
        if not s["ok_rounds"]:
            continue
        lines.append(
            f"| {name} | {s['ok_rounds']}/{s['rounds']} | {_spread(s, 'tcp1_gbps')} "
            f"| {_spread(s, 'tcp4_gbps')} | {_spread(s, 'udp64_kpps', 0)} "
            f"| {_spread(s, 'idle_mean_ms')} | {_spread(s, 'load_mean_ms')} "
            f"| {_spread(s, 'load_p99_ms')} | {_spread(s, 'load_max_ms')} "
            f"| {_spread(s, 'tcp1_retransmits', 0)} | {_spread(s, 'cpu_total_s_per_gb')} |")
    return "\n".join(lines)


def _rtt(r):
    if not r or "mean_ms" not in r:
        return "–"
    loss = f", {r['loss_percent']:.0f} % lost" if r.get("loss_percent") else ""
    return (f"{_fmt(r['mean_ms'])} / {_fmt(r['p99_ms'])} / {_fmt(r['max_ms'])}"
            f" ({r['received']} pings{loss})")


def gateway_section(g):
    if not g:
        return "*Gateway tests not run (`--no-gateway-tests`).*"
    if "error" in g and len(g) <= 2:
        return f"*Gateway tests failed: {g['error']}*"
    out = []
    hs = g.get("handshakes", {})
    if "gateway_handshakes_per_s_median" in hs:
        rates = ", ".join(_fmt(x, 0) for x in hs["gateway_handshakes_per_s"])
        target = "meets" if hs["gateway_handshakes_per_s_median"] >= 5000 else "**misses**"
        out += [
            "| handshakes, one core (in-process, `taskset -c %s`) | per second |" % hs.get("cpu"),
            "|---|---:|",
            f"| gateway answers initiations (median of {hs['reps']}: {rates}) — target ≥ 5,000, "
            f"{target} | {_fmt(hs['gateway_handshakes_per_s_median'], 0)} |",
            f"| client makes initiations | {_fmt(hs['client_initiations_per_s'], 0)} |",
            f"| client reads responses | {_fmt(hs['client_responses_per_s'], 0)} |",
            f"| whole handshake, both sides on the same core | "
            f"{_fmt(hs['full_handshakes_per_s'], 0)} |",
            "",
        ]
    elif hs:
        out += [f"*handshakes/s failed: {hs.get('error')}*", ""]
    mem = g.get("memory")
    sess = g.get("sessions", {})
    n = g.get("params", {}).get("sessions")
    if mem:
        def m(k):
            v = (mem.get(k) or {}).get("rss_kib")
            return "–" if v is None else f"{v / 1024:.1f}"
        with_s = (mem.get("with_sessions") or {}).get("rss_kib")
        verdict = ""
        if with_s is not None:
            verdict = " — target < 100 MB: " + ("meets" if with_s / 1024 < 100 else "**misses**")
        out += [
            f"| gateway memory (VmRSS) | MiB |", "|---|---:|",
            f"| {n} clients configured, no session | {m('configured_only')} |",
            f"| + 1 real client connected | {m('one_session')} |",
            f"| + {sess.get('configured', '?')} idle sessions "
            f"({g['params'].get('sessions_idle', 'silent')}; "
            f"up in {_fmt(sess.get('seconds'))} s, paced at {g['params']['session_rate']}/s; "
            f"gateway says {_fmt(sess.get('gateway_sessions_gauge'), 0)} sessions){verdict} "
            f"| {m('with_sessions')} |",
            f"| after the flood | {m('after_flood')} |",
            f"| per idle session | {_fmt(mem.get('per_session_kib'))} KiB |",
            "",
        ]
    fl = g.get("flood", {})
    if "rtt_one_session" in g:
        out += [
            "| RTT of the real client's session (ping every 20 ms) | mean / p99 / max ms |",
            "|---|---:|",
            f"| 1 session | {_rtt(g.get('rtt_one_session'))} |",
            f"| with {n} idle sessions | {_rtt(g.get('rtt_with_sessions'))} |",
            f"| during the handshake flood | {_rtt(g.get('rtt_during_flood'))} |",
            f"| after the flood | {_rtt(g.get('rtt_after_flood'))} |",
            "",
        ]
    if "sent_per_s" in fl:
        c = fl.get("gateway_counters", {})
        rej = ", ".join(f"{k} {v:.0f}" for k, v in (c.get("rejected") or {}).items()) or "none"
        cookies = sum((c.get("cookie_replies") or {}).values())
        rx = sum((c.get("udp_rx") or {}).values())
        k = fl.get("kernel_udp") or {}
        out += [
            f"Flood: {fl['sent']} initiations of unknown keys (valid mac1) in "
            f"{_fmt(fl['seconds'])} s from {fl['sources']} source addresses "
            f"({_fmt(fl['sent_per_s'] / 1000, 1)} k/s offered). The gateway read "
            f"{_fmt(rx / 1000, 1)} k datagrams (the kernel counted "
            f"{_fmt(k.get('RcvbufErrors', 0) / 1000, 1)} k receive-buffer errors in its "
            f"namespace), sent "
            f"{cookies:.0f} cookie replies, rejected: {rej}; gateway CPU "
            f"{_fmt(fl.get('gateway_cpu_percent'), 0)} % of one core; sessions still up "
            f"afterwards: {_fmt(fl.get('sessions_after'), 0)}.",
        ]
    return "\n".join(out)
