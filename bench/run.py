#!/usr/bin/python3
"""grelay benchmark harness: builds grelay in release mode, then measures grelay (UDP, TLS,
QUIC) and its peers (wireguard-go, boringtun, gotatun, OpenVPN, Quincy) and the bare veth,
in the same run and on the same path between two network namespaces; then the gateway's
handshake rate, memory with many idle sessions and a handshake flood's effect on RTT.

    sudo bench/run.py                 # all systems, 3 rounds (~12-15 min)
    sudo bench/run.py --quick         # 1 round, short durations (~4 min)
    sudo bench/run.py --systems grelay,wireguard-go --rounds 5
    sudo bench/run.py --list          # what can be measured here

Writes bench/results/<UTC date-time>/ (results.json, summary.md, bench.png, logs of
failures) and the results block of bench/README.md. See bench/README.md. Run by hand only:
nothing here is a test, and nothing asserts on timings.
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # keep bench/ free of __pycache__

from gbench import gwtests, measure, net, report, systems, util  # noqa: E402

README = os.path.join(HERE, "README.md")
BEGIN = "<!-- results:begin (written by bench/run.py) -->"
END = "<!-- results:end -->"
TOOLS = ["iperf3", "ping", "ip", "ss", "curl", "taskset", "wg", "wireguard-go", "boringtun-cli",
         "gotatun", "openvpn", "openssl", "quincy-server", "quincy-client", "cargo"]


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--systems", default=",".join(systems.DEFAULT),
                    help="comma-separated, from: " + ", ".join(systems.DEFAULT + systems.EXTRA)
                    + " (default: all but " + ", ".join(systems.EXTRA) + ")")
    ap.add_argument("--rounds", type=int, help="rounds over all systems (default 3, quick 1)")
    ap.add_argument("--quick", action="store_true",
                    help="1 round, short durations: a smoke run of the whole harness")
    ap.add_argument("--tcp-seconds", type=int, help="each iperf3 TCP run (default 5, quick 2)")
    ap.add_argument("--udp-seconds", type=int, help="the 64-byte UDP run (default 3, quick 2)")
    ap.add_argument("--load-seconds", type=int,
                    help="bulk transfer for RTT under load (default 6, quick 4)")
    ap.add_argument("--pings", type=int, help="idle pings, every 20 ms (default 100, quick 50)")
    ap.add_argument("--no-gateway-tests", action="store_true",
                    help="skip handshakes/s, memory with N sessions and the flood")
    ap.add_argument("--gateway-tests-only", action="store_true",
                    help="only the gateway tests (no systems comparison)")
    ap.add_argument("--sessions", type=int, default=10000,
                    help="idle sessions for the memory figure (default 10000)")
    ap.add_argument("--session-rate", type=int, default=800,
                    help="handshakes/s while bringing them up (default 800: under the "
                    "gateway's 1000/s cookie threshold)")
    ap.add_argument("--sessions-idle", choices=["silent", "protocol"], default="silent",
                    help="silent (default): a load-generator session sends nothing once it has "
                    "its addresses; protocol: its state machine runs as a real client's "
                    "(RTT probes every second for 30 s after the handshake, keepalives)")
    ap.add_argument("--flood-seconds", type=int, help="handshake flood (default 5, quick 3)")
    ap.add_argument("--flood-rate", type=int, default=0, help="initiations/s, 0 = max (default)")
    ap.add_argument("--flood-sources", type=int, default=16,
                    help="source addresses of the flood (default 16)")
    ap.add_argument("--no-build", action="store_true",
                    help="use target/release/* as they are (default: cargo build --release)")
    ap.add_argument("--results", default=os.path.join(HERE, "results"),
                    help="where the run's directory goes (default bench/results)")
    ap.add_argument("--no-readme", action="store_true", help="do not rewrite bench/README.md")
    ap.add_argument("--keep-work", action="store_true",
                    help="keep the work directory (configs, keys, logs) in /tmp")
    ap.add_argument("--list", action="store_true", help="show what is available and exit")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every command")
    a = ap.parse_args()
    q = a.quick
    a.rounds = a.rounds or (1 if q else 3)
    a.tcp_seconds = a.tcp_seconds or (2 if q else 5)
    a.udp_seconds = a.udp_seconds or (2 if q else 3)
    a.load_seconds = a.load_seconds or (4 if q else 6)
    a.pings = a.pings or (50 if q else 100)
    a.flood_seconds = a.flood_seconds or (3 if q else 5)
    a.ping_count = a.pings
    a.hs_count = 1000 if q else 2000
    a.hs_reps = 2 if q else 3
    a.system_list = [s.strip() for s in a.systems.split(",") if s.strip()]
    unknown = [s for s in a.system_list if s not in systems.DEFAULT + systems.EXTRA]
    if unknown:
        ap.error(f"unknown systems: {', '.join(unknown)}")
    if not 1 <= a.rounds <= 20:
        ap.error("--rounds: 1..20")
    for name in ("tcp_seconds", "udp_seconds", "load_seconds", "flood_seconds"):
        if not 1 <= getattr(a, name) <= 120:
            ap.error(f"--{name.replace('_', '-')}: 1..120")
    if a.load_seconds < 3:
        ap.error("--load-seconds: at least 3")
    if not 1 <= a.pings <= 5000 or not 1 <= a.sessions <= 60000:
        ap.error("--pings: 1..5000, --sessions: 1..60000")
    if not 1 <= a.flood_sources <= 200:
        ap.error("--flood-sources: 1..200")
    return a


def build(no_build, logdir):
    bins = {"grelay": os.path.join(REPO, "target", "release", "grelay"),
            "gateway": os.path.join(REPO, "target", "release", "grelay-gateway"),
            "loadgen": os.path.join(REPO, "target", "gbench-loadgen", "release",
                                    "grelay-loadgen")}
    if no_build:
        return bins
    cargo = util.find_tool("cargo")
    if not cargo:
        util.die("cargo not found (or use --no-build with binaries in target/release)")
    steps = [
        ("grelay", [cargo, "build", "--release", "-p", "grelay-client", "-p", "grelay-gateway"],
         None),
        ("loadgen", [cargo, "build", "--release", "--manifest-path",
                     os.path.join(HERE, "loadgen", "Cargo.toml")],
         {"CARGO_TARGET_DIR": os.path.join(REPO, "target", "gbench-loadgen")}),
    ]
    for name, cmd, env in steps:
        util.log(f"building {name}: {' '.join(cmd[1:])}")
        t0 = time.monotonic()
        logf = os.path.join(logdir, f"build-{name}.log")
        with open(logf, "w") as f:
            p = subprocess.run(cmd, cwd=REPO, stdout=f, stderr=subprocess.STDOUT,
                               env=dict(os.environ, **(env or {})), timeout=1800)
        if p.returncode != 0:
            with open(logf) as f:
                tail = "".join(f.readlines()[-30:])
            util.die(f"building {name} failed:\n{tail}")
        util.log(f"  built in {time.monotonic() - t0:.0f}s")
    return bins


def crate_version(name):
    path = os.path.expanduser("~/.cargo/.crates2.json")
    try:
        with open(path) as f:
            installs = json.load(f).get("installs", {})
    except (OSError, ValueError):
        return None
    for k in installs:
        if k.startswith(name + " "):
            return k.split()[1]
    return None


def git(*args):
    try:
        return subprocess.run(["git", "-C", REPO] + list(args), capture_output=True, text=True,
                              timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def machine_info(tools, bins):
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = "?"
    try:
        with open("/proc/meminfo") as f:
            mem = f"{int(f.readline().split()[1]) / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    v = {}
    v["grelay"] = (util.first_line([bins["grelay"], "--version"]) or "?") + \
        f" (commit {git('rev-parse', '--short', 'HEAD') or '?'}" + \
        (", uncommitted changes" if git("status", "--porcelain", "--", "client", "gateway",
                                        "shared") else "") + ")"
    if tools.get("wireguard-go"):
        v["wireguard-go"] = util.first_line([tools["wireguard-go"], "--version"])
    if tools.get("boringtun-cli"):
        v["boringtun"] = util.first_line([tools["boringtun-cli"], "--version"])
    if tools.get("gotatun"):
        v["gotatun"] = util.first_line([tools["gotatun"], "--version"])
    if tools.get("openvpn"):
        line = util.first_line([tools["openvpn"], "--version"]) or ""
        v["openvpn"] = " ".join(line.split()[:2])
    q = crate_version("quincy-client")
    if q:
        v["quincy"] = f"quincy-client/quincy-server {q}"
    v["iperf3"] = (util.first_line(["iperf3", "--version"]) or "").split(" (")[0]
    v["wg"] = ((util.first_line([tools["wg"], "--version"]) or "").split(" - ")[0]
               if tools.get("wg") else None)
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "kernel": platform.release(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "memory": mem,
        "loadavg_start": open("/proc/loadavg").read().split()[:3],
        "versions": {k: x for k, x in v.items() if x},
    }


def ensure_matplotlib():
    """Debian's python3-matplotlib for /usr/bin/python3: checked, installed if missing."""
    py = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
    ok = subprocess.run([py, "-c", "import matplotlib"], capture_output=True).returncode == 0
    if ok:
        return py
    if shutil.which("apt-get") and os.geteuid() == 0:
        util.log("installing python3-matplotlib (Debian) for the plot")
        p = subprocess.run(["apt-get", "install", "-y", "--no-install-recommends",
                            "python3-matplotlib"], capture_output=True, text=True, timeout=600,
                           env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
        if p.returncode == 0 and subprocess.run([py, "-c", "import matplotlib"],
                                                capture_output=True).returncode == 0:
            return py
        util.log("  could not install it: " + (p.stderr or p.stdout)[-300:])
    return None


def measure_system(sysobj, pair, a, rnd):
    """All measurements of one system in one round; returns the run's dict."""
    r = {"system": sysobj.name, "label": sysobj.label, "cipher": sysobj.cipher, "round": rnd}
    t0 = time.monotonic()
    sysobj.start(pair)
    sysobj.ready(pair)
    r["setup_s"] = time.monotonic() - t0
    server = measure.iperf_server(pair, sysobj.server_ip, os.path.join(sysobj.dir, "iperf3.log"))
    try:
        measure.ping(pair, sysobj.server_ip, 5, 0.05)  # warm-up (ARP, handshakes, caches)
        r["ping_idle"] = measure.ping(pair, sysobj.server_ip, a.pings)
        r["tcp1"] = measure.tcp(pair, sysobj.server_ip, a.tcp_seconds, 1, sysobj.procs, server)
        r["tcp4"] = measure.tcp(pair, sysobj.server_ip, a.tcp_seconds, 4, sysobj.procs, server)
        r["ping_load"] = measure.ping_under_load(pair, sysobj.server_ip, a.load_seconds)
        r["udp64"] = measure.udp_small(pair, sysobj.server_ip, a.udp_seconds)
        for p in sysobj.procs:
            if not p.running():
                raise util.Fail(f"{p.name} exited during the run; log {p.logfile}")
        rss = [util.proc_rss_kib(p.pid)[0] for p in sysobj.procs]
        r["tunnel_rss_kib"] = {p.name: v for p, v in zip(sysobj.procs, rss)}
    finally:
        server.stop()
    r["ok"] = True
    r["elapsed_s"] = time.monotonic() - t0
    return r


def short(r):
    def g(*path):
        v = r
        for k in path:
            v = (v or {}).get(k)
        return v
    parts = []
    if g("tcp1", "gbps") is not None:
        parts.append(f"tcp1 {g('tcp1', 'gbps'):.2f} Gb/s")
    if g("tcp4", "gbps") is not None:
        parts.append(f"tcp4 {g('tcp4', 'gbps'):.2f}")
    if g("udp64", "delivered_pps") is not None:
        parts.append(f"udp64 {g('udp64', 'delivered_pps') / 1000:.0f} kpps")
    if g("ping_idle", "mean_ms") is not None:
        parts.append(f"rtt idle {g('ping_idle', 'mean_ms'):.2f} ms")
    if g("ping_load", "mean_ms") is not None:
        parts.append(f"loaded {g('ping_load', 'mean_ms'):.2f}/{g('ping_load', 'p99_ms'):.2f}/"
                     f"{g('ping_load', 'max_ms'):.2f} ms")
    return ", ".join(parts)


def write_outputs(outdir, data, a, plot_py):
    summary = data["summary"]
    meta = data["meta"]
    md = render(data, a, outdir)
    with open(os.path.join(outdir, "summary.md"), "w") as f:
        f.write(md + "\n")
    with open(os.path.join(outdir, "results.json"), "w") as f:
        json.dump(data, f, indent=1)
    png = os.path.join(outdir, "bench.png")
    if plot_py and summary:
        p = subprocess.run([plot_py, os.path.join(HERE, "gbench", "plot.py"),
                            os.path.join(outdir, "results.json"), png],
                           capture_output=True, text=True, timeout=120)
        if p.returncode != 0:
            util.log("plot failed: " + (p.stderr or p.stdout)[-500:])
        else:
            util.log(f"plot: {png}")
    if not a.no_readme:
        update_readme(md)
    return md


def render(data, a, outdir):
    meta = data["meta"]
    rel = os.path.relpath(outdir, HERE)
    v = meta["versions"]
    lines = [
        f"### Latest run: {meta['date']}{' — quick mode' if a.quick else ''}",
        "",
        f"Machine: {meta['cpu']}, {meta['cpus']} CPUs, {meta['memory']}, Linux "
        f"{meta['kernel']}; load average at start {' '.join(meta['loadavg_start'])}, at end "
        f"{' '.join(meta.get('loadavg_end', ['?']))}. "
        f"{meta['rounds']} round(s); TCP {a.tcp_seconds} s per run, 64-byte UDP "
        f"{a.udp_seconds} s, RTT under load over a {a.load_seconds} s bulk transfer, "
        f"{a.pings} idle pings. Raw results, logs of failures and the plot: "
        f"[`{rel}/`]({rel}/).",
        "",
        "Versions: " + "; ".join(f"{k} {x}" if not x.lower().startswith(k.lower()) else x
                                 for k, x in v.items()) + ".",
        "",
    ]
    if data.get("summary"):
        lines += [
            "Medians over the rounds (spread below). *Relative* figures (the last two columns) "
            "come from the same run on the same path and are the ones to quote; absolute "
            "figures move with whatever else the machine is doing.",
            "",
            report.systems_table(data["summary"]),
            "",
            "Spread (min–max over rounds):",
            "",
            report.spread_table(data["summary"]),
            "",
            f"![throughput and RTT under load]({rel}/bench.png)",
            "",
        ]
    lines += ["#### Gateway", "", report.gateway_section(data.get("gateway")), ""]
    return "\n".join(lines)


def update_readme(md):
    try:
        with open(README) as f:
            text = f.read()
    except OSError:
        text = f"# grelay benchmarks\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text or END not in text:
        text = text.rstrip() + f"\n\n## Results\n\n{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    with open(README, "w") as f:
        f.write(head + BEGIN + "\n" + md.rstrip() + "\n" + END + tail)
    util.log(f"updated {README}")


def main():
    a = parse_args()
    util.set_verbose(a.verbose)
    tools = {t: util.find_tool(t) for t in TOOLS}
    if a.list:
        for t in TOOLS:
            print(f"  {t:15} {tools[t] or 'MISSING'}")
        return 0
    if os.geteuid() != 0:
        util.die("needs root (network namespaces, TUN devices): run with sudo")
    for t in ("iperf3", "ping", "ip", "ss", "taskset"):
        if not tools[t]:
            util.die(f"{t} is missing (Debian: apt-get install iperf3 iputils-ping iproute2 "
                     "util-linux)")
    util.install_signal_handlers()
    prefix = f"gb{os.getpid()}"
    work = tempfile.mkdtemp(prefix=f"gbench{os.getpid()}-")
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
    outdir = os.path.join(a.results, stamp + ("-quick" if a.quick else ""))
    os.makedirs(outdir, exist_ok=True)
    started = time.monotonic()
    data = {"meta": {}, "params": {k: v for k, v in vars(a).items() if k != "system_list"},
            "runs": [], "summary": {}, "gateway": None}
    try:
        bins = build(a.no_build, work)
        for b in ("grelay", "gateway"):
            if not os.access(bins[b], os.X_OK):
                util.die(f"{bins[b]} missing: build it or drop --no-build")
        data["meta"] = machine_info(tools, bins)
        data["meta"].update({"rounds": a.rounds, "quick": a.quick, "prefix": prefix})
        ctx = systems.Ctx(prefix, work, bins, tools)
        plot_py = ensure_matplotlib()
        if not plot_py:
            util.log("no matplotlib: the plot will be skipped (apt-get install python3-matplotlib)")
        index = 0
        order = [] if a.gateway_tests_only else list(a.system_list)
        objs = {}
        for name in order:
            objs[name] = systems.make(name, ctx)
            ok, why = objs[name].available()
            if not ok:
                util.log(f"{name}: skipped ({why})")
                data["runs"].append({"system": name, "label": objs[name].label,
                                     "cipher": objs[name].cipher, "skipped": why, "ok": False})
        active = [n for n in order if objs[n].available()[0]]
        unsupported = set()
        for rnd in range(1, a.rounds + 1):
            shift = (rnd - 1) % max(1, len(active))
            for name in active[shift:] + active[:shift]:
                if name in unsupported:
                    continue
                index += 1
                util.log(f"round {rnd}/{a.rounds}: {name}")
                sysobj = systems.make(name, ctx)
                pair = None
                try:
                    pair = net.Pair(prefix, index)
                    r = measure_system(sysobj, pair, a, rnd)
                    util.log("  " + short(r))
                except util.Unsupported as e:
                    util.log(f"  {name}: not supported by these binaries: {e}")
                    unsupported.add(name)
                    r = {"system": name, "label": sysobj.label, "cipher": sysobj.cipher,
                         "round": rnd, "ok": False, "skipped": str(e)}
                except (util.Fail, OSError, ValueError, KeyError) as e:
                    util.log(f"  {name} failed: {e}")
                    r = {"system": name, "label": sysobj.label, "cipher": sysobj.cipher,
                         "round": rnd, "ok": False, "error": str(e)}
                    keep_logs(sysobj.dir, outdir, f"{name}-round{rnd}")
                finally:
                    sysobj.stop()
                    if pair:
                        pair.close()
                data["runs"].append(r)
        data["summary"] = report.summarize(data["runs"], order)
        if not a.no_gateway_tests:
            if not os.access(bins["loadgen"], os.X_OK):
                util.log(f"gateway tests skipped: {bins['loadgen']} missing")
                data["gateway"] = {"error": "load generator not built"}
            else:
                try:
                    index += 1
                    data["gateway"] = gwtests.run(ctx, index, a)
                except (util.Fail, OSError, ValueError, KeyError) as e:
                    util.log(f"gateway tests failed: {e}")
                    traceback.print_exc()
                    data["gateway"] = {"error": str(e)}
                    for d in os.listdir(work):
                        if d.endswith("gateway-load"):
                            keep_logs(os.path.join(work, d), outdir, "gateway-load")
        data["meta"]["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
        data["meta"]["elapsed_s"] = time.monotonic() - started
        md = write_outputs(outdir, data, a, plot_py)
        print()
        print(md)
        util.log(f"done in {(time.monotonic() - started) / 60:.1f} min; results in {outdir}")
        return 0
    except KeyboardInterrupt:
        util.log("interrupted: cleaning up")
        if data["runs"]:
            data["summary"] = report.summarize(data["runs"], list(dict.fromkeys(
                r["system"] for r in data["runs"])))
            data["meta"]["interrupted"] = True
            with open(os.path.join(outdir, "results.json"), "w") as f:
                json.dump(data, f, indent=1)
        return 130
    finally:
        util.cleanup()
        if a.keep_work:
            util.log(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def keep_logs(src, outdir, name):
    """Copies the logs of a failed system into the results directory."""
    if src and os.path.isdir(src):
        dst = os.path.join(outdir, "logs", name)
        os.makedirs(dst, exist_ok=True)
        for f in os.listdir(src):
            if f.endswith((".log", ".out")):
                shutil.copy(os.path.join(src, f), dst)


if __name__ == "__main__":
    sys.exit(main())
