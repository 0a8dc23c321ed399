"""Gateway-only figures: handshakes per second on one core, memory with many idle sessions,
and what a handshake flood does to the RTT of a session that is already up.

    client ns ──veth── gateway ns ──veth── load-generator ns
    grelay up          grelay-gateway      grelay-loadgen (sessions, flood)
                       (bench + N clients)

* handshakes/s: `taskset -c CPU grelay-loadgen handshakes` — the core's `Gateway` answering
  pre-made initiations in-process on one core, with the flood defence (cookies above 1000
  initiations/s) switched off so the Noise work itself is measured; also the client's costs.
* memory: the gateway is configured with the bench client plus N load-generator keys; its
  VmRSS is read after start, after the real client connects, and once `grelay-loadgen
  sessions` has brought N sessions up (each with its address assignment) and they sit idle.
  The sessions are paced below the gateway's load threshold (1000 initiations/s) so that
  no cookie round trips are needed.
* flood: `grelay-loadgen flood` replays initiations of unknown keys (valid mac1) from
  several source addresses as fast as it can; meanwhile the real client pings through its
  tunnel. RTT before (1 session), with N idle sessions, during the flood and after it; the
  gateway's CPU and counters (cookie replies, rejections) over the flood.
"""

import json
import os
import select
import time

from . import measure, net, systems, util


def metrics(ns):
    p = util.ns_run(ns, ["curl", "-s", "--max-time", "3", "http://127.0.0.1:9477/metrics"],
                    timeout=10, check=False)
    out = {}
    for line in p.stdout.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        try:
            out[name] = float(value)
        except ValueError:
            pass
    return out


def metric_delta(before, after, prefix):
    """Changes of the metrics named `prefix`, by label value ("total" without labels)."""
    out = {}
    for k in after:
        if k.startswith(prefix) and after[k] - before.get(k, 0):
            label = k[len(prefix):].strip("{}")
            out[label.split("=", 1)[-1].strip('"') if label else "total"] = after[k] - before.get(k, 0)
    return out


def udp_snmp(ns):
    """The namespace's UDP counters (/proc/net/snmp is per namespace)."""
    text = util.ns_run(ns, ["cat", "/proc/net/snmp"], check=False).stdout
    rows = [line.split()[1:] for line in text.splitlines() if line.startswith("Udp:")]
    if len(rows) < 2:
        return {}
    return {k: int(v) for k, v in zip(rows[0], rows[1])}


def read_json_line(proc, want, timeout):
    """Reads the first JSON line from `proc`'s stdout with event `want` (bounded)."""
    end = time.monotonic() + timeout
    buf = b""
    fd = proc.p.stdout.fileno()
    while time.monotonic() < end:
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                try:
                    obj = json.loads(line)
                except ValueError:
                    continue
                if want is None or obj.get("event") == want:
                    return obj
        elif not proc.running() and not r:
            break
    return None


def mib(kib):
    return None if kib is None else kib / 1024


def run(ctx, index, opts):
    res = {"params": {"sessions": opts.sessions, "session_rate": opts.session_rate,
                      "sessions_idle": opts.sessions_idle,
                      "flood_seconds": opts.flood_seconds, "flood_sources": opts.flood_sources,
                      "flood_rate": opts.flood_rate}}
    loadgen = ctx.bins["loadgen"]

    # 1. Handshakes per second on one core, in-process.
    cpu = sorted(os.sched_getaffinity(0))[-1]
    util.log(f"gateway: handshakes/s in-process on CPU {cpu} ({opts.hs_count} initiations, "
             f"{opts.hs_reps} repetitions)")
    p = util.run(["taskset", "-c", str(cpu), loadgen, "handshakes", "--count",
                  str(opts.hs_count), "--reps", str(opts.hs_reps)], timeout=300, check=False)
    try:
        res["handshakes"] = json.loads(p.stdout.strip().splitlines()[-1])
        res["handshakes"]["cpu"] = cpu
    except (ValueError, IndexError):
        res["handshakes"] = {"error": (p.stdout + p.stderr)[-500:]}

    # 2. Memory with N idle sessions, then a flood.
    pair = net.Pair(ctx.prefix, index)
    d = ctx.dir("gateway-load")
    procs = []
    try:
        sources = pair.add_loadgen(opts.flood_sources)
        keys = systems.grelay_keys(ctx, d)
        util.log(f"gateway: configuring {opts.sessions} load-generator clients")
        extra = util.run([loadgen, "keys", "--count", str(opts.sessions), "--seed", "1"],
                         timeout=120).stdout
        gw_if, cl_if = ctx.prefix + "gw", ctx.prefix + "t"
        systems.write(os.path.join(d, "gateway.toml"),
                      systems.gateway_toml("0.0.0.0:4747", gw_if,
                                           [("bench", keys["client_pub"])], extra))
        gw = util.Proc("gateway", pair.gateway, [ctx.bins["gateway"], "run", "--config",
                                                 os.path.join(d, "gateway.toml")],
                       os.path.join(d, "gateway.log"))
        procs.append(gw)
        if not gw.wait_log("listening on udp", 60):
            raise util.Fail("gateway did not start: " + gw.log_text(tail=10))
        time.sleep(0.5)
        rss = {"configured_only": proc_mem(gw)}
        systems.write(os.path.join(d, "client.toml"),
                      systems.client_toml(cl_if, f"{net.GATEWAY_IP}:4747", keys["gateway_pub"]))
        cl = util.Proc("client", pair.client, [ctx.bins["grelay"], "--run-dir",
                                               os.path.join(d, "run"), "up",
                                               os.path.join(d, "client.toml")],
                       os.path.join(d, "client.log"))
        procs.append(cl)
        if not cl.wait_log(f"configured {cl_if}", 20):
            raise util.Fail("client not configured: " + cl.log_text(tail=10))
        systems.wait_ping(pair.client, "10.77.0.1")
        rss["one_session"] = proc_mem(gw)
        ping_n = opts.ping_count
        res["rtt_one_session"] = strip(measure.ping(pair, "10.77.0.1", ping_n))

        util.log(f"gateway: bringing up {opts.sessions} sessions at {opts.session_rate}/s")
        timeout = opts.sessions / opts.session_rate * 2 + 30
        hold = 3 + ping_n * 0.02 * 3 + opts.flood_seconds + 30
        sess = util.Proc("loadgen-sessions", pair.loadgen, [
            loadgen, "sessions", "--gateway", f"{net.LOADGEN_GW_IP}:4747", "--gateway-key",
            keys["gateway_pub"], "--count", str(opts.sessions), "--seed", "1", "--rate",
            str(opts.session_rate), "--hold", str(int(hold)), "--timeout", str(int(timeout)),
            "--bind", net.LOADGEN_IP, "--idle", opts.sessions_idle],
            os.path.join(d, "loadgen-sessions.log"), stdout_pipe=True)
        procs.append(sess)
        ready = read_json_line(sess, "ready", timeout + 15)
        res["sessions"] = ready or {"error": "no ready line: " + sess.log_text(tail=5)}
        time.sleep(1.0)
        rss["with_sessions"] = proc_mem(gw)
        m1 = metrics(pair.gateway)
        res["sessions"]["gateway_sessions_gauge"] = m1.get(
            'grelay_gateway_sessions{transport="udp"}')
        res["sessions"]["gateway_handshakes_total"] = m1.get(
            "grelay_gateway_handshakes_completed_total")
        res["rtt_with_sessions"] = strip(measure.ping(pair, "10.77.0.1", ping_n))

        util.log(f"gateway: handshake flood for {opts.flood_seconds}s from "
                 f"{len(sources)} sources")
        cpu0 = gw.cpu()
        snmp0 = udp_snmp(pair.gateway)
        t0 = time.monotonic()
        flood = util.Proc("loadgen-flood", pair.loadgen, [
            loadgen, "flood", "--gateway", f"{net.LOADGEN_GW_IP}:4747", "--gateway-key",
            keys["gateway_pub"], "--seconds", str(opts.flood_seconds), "--rate",
            str(opts.flood_rate), "--sources", ",".join(sources)],
            os.path.join(d, "loadgen-flood.log"), stdout_pipe=True)
        procs.append(flood)
        time.sleep(0.5)
        n = max(10, int((opts.flood_seconds - 1.0) / 0.02))
        res["rtt_during_flood"] = strip(measure.ping(pair, "10.77.0.1", n))
        fl = read_json_line(flood, None, opts.flood_seconds + 20)
        cpu1, t1 = gw.cpu(), time.monotonic()
        snmp1 = udp_snmp(pair.gateway)
        m2 = metrics(pair.gateway)
        res["flood"] = fl or {"error": flood.log_text(tail=5)}
        res["flood"]["gateway_cpu_percent"] = (
            100.0 * (cpu1 - cpu0) / (t1 - t0) if cpu0 is not None and cpu1 is not None else None)
        res["flood"]["gateway_counters"] = {
            "cookie_replies": metric_delta(m1, m2, "grelay_gateway_cookie_replies_total"),
            "rejected": metric_delta(m1, m2, "grelay_gateway_handshakes_rejected_total"),
            "udp_rx": metric_delta(m1, m2, 'grelay_gateway_udp_datagrams_total{direction="rx"}'),
        }
        res["flood"]["kernel_udp"] = {k: snmp1[k] - snmp0.get(k, 0) for k in snmp1
                                      if k in ("InDatagrams", "RcvbufErrors", "InErrors")}
        res["flood"]["sessions_after"] = m2.get('grelay_gateway_sessions{transport="udp"}')
        time.sleep(1.0)
        res["rtt_after_flood"] = strip(measure.ping(pair, "10.77.0.1", ping_n))
        rss["after_flood"] = proc_mem(gw)
        res["memory"] = rss
        n_sess = opts.sessions
        if rss["with_sessions"]["rss_kib"] and rss["one_session"]["rss_kib"]:
            res["memory"]["per_session_kib"] = (
                (rss["with_sessions"]["rss_kib"] - rss["one_session"]["rss_kib"]) / n_sess)
    finally:
        for p in reversed(procs):
            p.stop()
        pair.close()
    return res


def proc_mem(proc):
    rss, hwm = util.proc_rss_kib(proc.pid)
    return {"rss_kib": rss, "hwm_kib": hwm}


def strip(ping_result):
    ping_result = dict(ping_result)
    ping_result.pop("samples_ms", None)
    return ping_result
