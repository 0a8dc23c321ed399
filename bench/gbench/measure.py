"""The measurements, each a thin wrapper around iperf3 or ping run inside the namespaces.

* TCP throughput: `iperf3 -c SERVER -t T [-P 4] -J` from the client namespace to an iperf3
  server on the gateway host's tunnel address; the figure is what the receiver got.
* Small packets: `iperf3 -u -l 64 -b 0` (as fast as the sender can): 64-byte payloads
  delivered per second at the receiver, and the loss.
* RTT: `ping -i 0.02` across the tunnel, idle, and while a one-stream TCP bulk transfer runs
  in the same direction (the ping starts 1 s into the transfer and stops before its end).
* CPU: utime + stime from /proc/PID/stat of the tunnel's own processes (client + gateway
  side) and of both iperf3 ends (the client's from getrusage(RUSAGE_CHILDREN)), over the
  one-stream TCP run, divided by the gigabytes delivered. Kernel work done in softirq
  context on behalf of a process is usually charged to whichever process is running; the
  whole machine's busy time (/proc/stat) is recorded too but is shared with everything else
  running on the host.
"""

import json
import math
import re
import resource
import statistics
import subprocess
import time

from . import util

PORT = "5201"


def iperf_server(pair, ip, logfile):
    p = util.Proc("iperf3-server", pair.gateway, ["iperf3", "-s", "-B", ip, "-p", PORT],
                  logfile)
    end = time.monotonic() + 5
    while time.monotonic() < end:
        out = util.ns_run(pair.gateway, ["ss", "-Hltn", f"sport = :{PORT}"], check=False).stdout
        if out.strip():
            return p
        time.sleep(0.05)
    p.stop()
    raise util.Fail(f"iperf3 server did not listen on {ip}:{PORT}: {p.log_text(tail=5)}")


def _iperf(pair, args, timeout):
    cmd = util.ns_cmd(pair.client, ["iperf3", "-p", PORT, "-J", "--connect-timeout", "3000"]
                      + args)
    util.debug("$ " + " ".join(cmd))
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise util.Fail(f"iperf3 timed out: {' '.join(args)}")
    try:
        data = json.loads(p.stdout)
    except ValueError:
        raise util.Fail(f"iperf3 {' '.join(args)}: no JSON: {p.stdout[-400:]}{p.stderr[-400:]}")
    if "error" in data:
        raise util.Fail(f"iperf3 {' '.join(args)}: {data['error']}")
    return data


def _children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def tcp(pair, ip, seconds, streams, tunnel_procs, server):
    before = {p.pid: p.cpu() for p in tunnel_procs}
    srv0, kids0, sys0, t0 = server.cpu(), _children_cpu(), util.system_cpu(), time.monotonic()
    args = ["-c", ip, "-t", str(seconds)] + (["-P", str(streams)] if streams > 1 else [])
    data = _iperf(pair, args, timeout=seconds + 20)
    wall = time.monotonic() - t0
    kids1, srv1, sys1 = _children_cpu(), server.cpu(), util.system_cpu()
    tunnel_cpu = 0.0
    for p in tunnel_procs:
        c = p.cpu()
        if c is None or before.get(p.pid) is None:
            raise util.Fail(f"{p.name} exited during the TCP test; log {p.logfile}")
        tunnel_cpu += c - before[p.pid]
    end = data["end"]
    received = end["sum_received"]
    gbytes = received["bytes"] / 1e9
    iperf_cpu = (kids1 - kids0) + ((srv1 or 0) - (srv0 or 0))
    busy = (sys1[0] - sys0[0]) / util.CLK_TCK
    out = {
        "gbps": received["bits_per_second"] / 1e9,
        "bytes": received["bytes"],
        "seconds": received["seconds"],
        "retransmits": end["sum_sent"].get("retransmits"),
        "cpu_tunnel_s": tunnel_cpu,
        "cpu_iperf_s": iperf_cpu,
        "cpu_machine_busy_s": busy,
        "wall_s": wall,
    }
    if gbytes > 0:
        out["cpu_s_per_gb_tunnel"] = tunnel_cpu / gbytes
        out["cpu_s_per_gb_total"] = (tunnel_cpu + iperf_cpu) / gbytes
        out["cpu_s_per_gb_machine"] = busy / gbytes
    return out


def udp_small(pair, ip, seconds):
    data = _iperf(pair, ["-c", ip, "-u", "-l", "64", "-b", "0", "-t", str(seconds)],
                  timeout=seconds + 20)
    end = data["end"]
    rx = end.get("sum_received") or end["sum"]
    tx = end.get("sum_sent") or end["sum"]
    delivered = max(0, rx["packets"] - rx["lost_packets"])
    return {
        "delivered_pps": delivered / rx["seconds"] if rx["seconds"] else 0.0,
        "sent_pps": tx["packets"] / tx["seconds"] if tx["seconds"] else 0.0,
        "lost_percent": rx.get("lost_percent"),
        "packets_sent": tx["packets"],
        "packets_delivered": delivered,
    }


def rtt_stats(samples, sent):
    s = sorted(samples)
    n = len(s)
    out = {"sent": sent, "received": n, "loss_percent": 100.0 * (sent - n) / sent if sent else 0}
    if n:
        out.update({
            "mean_ms": statistics.fmean(s),
            "min_ms": s[0],
            "p50_ms": s[(n - 1) // 2],
            "p99_ms": s[max(0, math.ceil(0.99 * n) - 1)],
            "max_ms": s[-1],
        })
    return out


_TIME = re.compile(r"time=([\d.]+) ms")


def ping(pair, ip, count, interval=0.02):
    cmd = ["ping", "-n", "-c", str(count), "-i", str(interval), "-W", "1", ip]
    p = util.ns_run(pair.client, cmd, timeout=count * interval + 10, check=False)
    samples = [float(m) for m in _TIME.findall(p.stdout)]
    out = rtt_stats(samples, count)
    out["samples_ms"] = samples
    return out


def ping_under_load(pair, ip, seconds, interval=0.02):
    """A one-stream TCP transfer for `seconds`; pings from 1 s in until 0.5 s before its end."""
    cmd = util.ns_cmd(pair.client, ["iperf3", "-p", PORT, "-J", "--connect-timeout", "3000",
                                    "-c", ip, "-t", str(seconds)])
    bulk = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)
        count = max(10, int((seconds - 1.5) / interval))
        result = ping(pair, ip, count, interval)
        out, err = bulk.communicate(timeout=seconds + 20)
    except BaseException:
        bulk.kill()
        bulk.wait(5)
        raise
    try:
        data = json.loads(out)
        result["bulk_gbps"] = data["end"]["sum_received"]["bits_per_second"] / 1e9
    except (ValueError, KeyError):
        result["bulk_gbps"] = None
        result["bulk_error"] = (out[-300:] + err[-300:]).strip()
    return result
