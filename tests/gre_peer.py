#!/usr/bin/python3
"""A userspace GRE tunnel endpoint (RFC 2784 / RFC 2890) for grelay's namespace tests.

The test machines have no kernel GRE devices (no ip_gre module), so this script plays the far
end of a raw-GRE link, the way a router or game-server farm behind grelay's gateway would:

* it creates a TUN device (IFF_TUN | IFF_NO_PI) with the given addresses and routes, so the
  namespace's own kernel answers ICMP, UDP and TCP for the tunnel addresses (a real stack);
* GRE (IP protocol 47) arriving from --remote on a raw socket is decoded with scapy's GRE
  layer, checked (source, key, checksum, version, no routing) and its inner IPv4/IPv6 packet
  written to the TUN; everything refused is dropped and counted;
* packets the kernel routes into the TUN are encapsulated with the configured key, sequence
  numbers and checksum and sent to --remote (the kernel adds the outer IP header).

Cisco-style keepalives work as on a Cisco router: the inner packet of a keepalive (an IP packet
from this end's outer address to the prober, carrying an empty GRE frame of protocol 0) goes to
the TUN and the kernel routes it straight back out as plain GRE. For that the CALLER must turn
on forwarding in this namespace (net.ipv4.ip_forward=1 / net.ipv6.conf.all.forwarding=1); the
script itself sets accept_local=1 and rp_filter=0 on its TUN (the inner source is one of the
namespace's own addresses) and warns at start when forwarding is off. GRE frames of protocol 0
with no payload that reach this end (keepalive replies) are counted as `keepalives`.

Link-scope IPv6 multicast the kernel sends into the TUN (MLD reports, router solicitations) is
not tunnelled (counted as `tx_link_local`), so the tunnel carries only the test's traffic.

Output, one line each, flushed: `ready ...` once the TUN and socket are up; `stats reason=...
k=v ...` on SIGUSR1 (reason=signal), every --log-every packets (reason=every) and at exit
(reason=exit); `exit reason=...` last. SIGTERM/SIGINT stop it cleanly, and it stops by itself
after --duration seconds.

Other modes: `--check` imports scapy and exits (3 when scapy is missing: Debian package
python3-scapy); `--send ping|keepalive` crafts and sends one GRE frame and exits (for tests:
wrong keys, bad checksums, keepalive probes).

Run it with /usr/bin/python3 (Debian's interpreter, where python3-scapy is installed).
"""

import argparse
import errno
import fcntl
import ipaddress
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import time
import traceback

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
PROTO_IPV4 = 0x0800
PROTO_IPV6 = 0x86DD
PROTO_KEEPALIVE = 0x0000
FLAG_C, FLAG_R, FLAG_K, FLAG_S = 0x8000, 0x4000, 0x2000, 0x1000
BATCH = 64
EXIT_NO_SCAPY = 3
COUNTERS = (
    "rx", "rx_bytes", "tx", "tx_bytes", "keepalives", "csum_rx", "seq_rx", "seq_reordered",
    "drop_source", "drop_key", "drop_csum", "drop_malformed", "drop_proto",
    "tx_link_local", "tun_errors", "send_errors", "errors",
)


def say(*parts):
    print(*parts, flush=True)


def load_scapy():
    try:
        from scapy import __version__ as version
        from scapy.layers.inet import ICMP, IP
        from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6
        from scapy.layers.l2 import GRE
        from scapy.packet import Raw
        from scapy.utils import checksum
    except ImportError as e:
        print(f"gre_peer: scapy is missing ({e}): install the Debian package python3-scapy "
              f"and run this script with /usr/bin/python3", file=sys.stderr, flush=True)
        sys.exit(EXIT_NO_SCAPY)

    class GreHeader(GRE):
        """scapy's GRE, but the payload stays raw bytes (never dissected)."""

        def guess_payload_class(self, payload):
            return Raw

    return {
        "version": version, "GRE": GRE, "GreHeader": GreHeader, "Raw": Raw,
        "checksum": checksum, "IP": IP, "ICMP": ICMP, "IPv6": IPv6,
        "ICMPv6EchoRequest": ICMPv6EchoRequest,
    }


def parse_args(argv):
    p = argparse.ArgumentParser(description="userspace GRE tunnel endpoint (test tool)")
    p.add_argument("--check", action="store_true", help="check that scapy imports, then exit")
    p.add_argument("--local", help="outer source address (bound)")
    p.add_argument("--remote", help="outer peer address")
    p.add_argument("--key", type=int, help="GRE key, both directions (absent: no key)")
    p.add_argument("--seq", action="store_true", help="send sequence numbers")
    p.add_argument("--csum", action="store_true", help="send checksums")
    p.add_argument("--tun", help="TUN device name")
    p.add_argument("--tun-addr", help="IPv4 address/prefix on the TUN")
    p.add_argument("--tun-addr6", help="IPv6 address/prefix on the TUN")
    p.add_argument("--route", action="append", default=[], help="prefix routed via the TUN")
    p.add_argument("--mtu", type=int, default=1400, help="TUN MTU (default 1400)")
    p.add_argument("--duration", type=float, default=300.0,
                   help="exit by itself after this many seconds (default 300)")
    p.add_argument("--log-every", type=int, default=0, help="print counters every N packets")
    p.add_argument("--send", choices=["ping", "keepalive"],
                   help="send one crafted frame from --local to --remote and exit")
    p.add_argument("--inner-src", help="--send ping: inner source")
    p.add_argument("--inner-dst", help="--send ping: inner destination")
    p.add_argument("--send-seq", type=int, help="--send: sequence number to put in the frame")
    p.add_argument("--bad-csum", action="store_true", help="--send: corrupt the checksum")
    args = p.parse_args(argv)
    if args.check:
        return args
    for name in ("local", "remote"):
        if getattr(args, name) is None:
            p.error(f"--{name} is required")
    args.local = ipaddress.ip_address(args.local)
    args.remote = ipaddress.ip_address(args.remote)
    if args.local.version != args.remote.version:
        p.error("--local and --remote must be of one family")
    if args.key is not None and not 0 <= args.key < 2**32:
        p.error("--key must fit in 32 bits")
    if args.send:
        if args.send == "ping" and (args.inner_src is None or args.inner_dst is None):
            p.error("--send ping needs --inner-src and --inner-dst")
        return args
    if args.tun is None or args.tun_addr is None:
        p.error("--tun and --tun-addr are required")
    if len(args.tun.encode()) > 15:
        p.error("--tun is longer than 15 bytes")
    if args.duration <= 0:
        p.error("--duration must be positive")
    return args


def outer_socket(local):
    family = socket.AF_INET6 if local.version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_RAW, socket.IPPROTO_GRE)
    sock.bind((str(local), 0))
    return sock


def gre_frame(sc, proto, payload, key=None, seq=None, csum=False, bad_csum=False):
    """Builds GRE header + payload with scapy (scapy computes the checksum)."""
    hdr = sc["GreHeader"](proto=proto)
    if csum or bad_csum:
        hdr.chksum_present = 1
        hdr.offset = 0
    if key is not None:
        hdr.key_present = 1
        hdr.key = key
    if seq is not None:
        hdr.seqnum_present = 1
        hdr.sequence_number = seq & 0xFFFFFFFF
    frame = bytes(hdr / sc["Raw"](payload))
    if bad_csum:
        frame = frame[:4] + bytes([frame[4] ^ 0xFF, frame[5]]) + frame[6:]
    return frame


# ---------------------------------------------------------------- --send mode


def send_one(sc, args):
    if args.send == "ping":
        src = ipaddress.ip_address(args.inner_src)
        dst = ipaddress.ip_address(args.inner_dst)
        if src.version == 6:
            inner = bytes(sc["IPv6"](src=str(src), dst=str(dst)) /
                          sc["ICMPv6EchoRequest"](id=0x6772, seq=1, data=b"gre_peer"))
            proto = PROTO_IPV6
        else:
            inner = bytes(sc["IP"](src=str(src), dst=str(dst)) /
                          sc["ICMP"](id=0x6772, seq=1) / sc["Raw"](b"gre_peer"))
            proto = PROTO_IPV4
    else:
        # Cisco keepalive: the payload is an IP packet from the far end to us, carrying an
        # empty GRE frame of protocol 0 (with the tunnel's key, as Cisco sends it).
        empty = gre_frame(sc, PROTO_KEEPALIVE, b"", key=args.key)
        if args.local.version == 6:
            inner = bytes(sc["IPv6"](src=str(args.remote), dst=str(args.local), nh=47) /
                          sc["Raw"](empty))
            proto = PROTO_IPV6
        else:
            inner = bytes(sc["IP"](src=str(args.remote), dst=str(args.local), proto=47) /
                          sc["Raw"](empty))
            proto = PROTO_IPV4
    frame = gre_frame(sc, proto, inner, key=args.key, seq=args.send_seq,
                      csum=args.csum, bad_csum=args.bad_csum)
    with outer_socket(args.local) as sock:
        sock.sendto(frame, (str(args.remote), 0))
    say(f"sent {args.send} {len(frame)} bytes {args.local} -> {args.remote}: {frame.hex()}")


# ---------------------------------------------------------------- tunnel mode


def ip(*argv):
    subprocess.run(["ip", *argv], check=True, timeout=10)


def write_sysctl(path, value):
    try:
        with open(path, "w") as f:
            f.write(f"{value}\n")
    except OSError as e:
        say(f"warning: cannot set {path}: {e}")


def read_sysctl(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return "?"


def open_tun(args):
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", args.tun.encode(), IFF_TUN | IFF_NO_PI))
    os.set_blocking(fd, False)
    conf4 = f"/proc/sys/net/ipv4/conf/{args.tun}"
    # The inner packet of a keepalive has one of our own addresses as its source.
    write_sysctl(f"{conf4}/accept_local", 1)
    write_sysctl(f"{conf4}/rp_filter", 0)
    if args.tun_addr6 is None:
        write_sysctl(f"/proc/sys/net/ipv6/conf/{args.tun}/disable_ipv6", 1)
    else:
        # No link-local address: keeps router solicitations and MLD out of the tunnel.
        write_sysctl(f"/proc/sys/net/ipv6/conf/{args.tun}/addr_gen_mode", 1)
    ip("link", "set", "dev", args.tun, "mtu", str(args.mtu), "up")
    ip("addr", "add", args.tun_addr, "dev", args.tun)
    if args.tun_addr6 is not None:
        ip("-6", "addr", "add", args.tun_addr6, "dev", args.tun, "nodad")
    for prefix in args.route:
        family = "-6" if ":" in prefix else "-4"
        ip(family, "route", "add", prefix, "dev", args.tun)
    return fd


class Peer:
    def __init__(self, sc, args):
        self.sc = sc
        self.args = args
        self.counts = dict.fromkeys(COUNTERS, 0)
        self.tx_seq = 0
        self.rx_seq = None
        self.next_log = args.log_every if args.log_every > 0 else None
        self.tracebacks = 0

    def stats(self, reason):
        fields = " ".join(f"{k}={v}" for k, v in self.counts.items())
        say(f"stats reason={reason} {fields}")

    def maybe_log(self):
        if self.next_log is not None and self.counts["rx"] + self.counts["tx"] >= self.next_log:
            self.next_log += self.args.log_every
            self.stats("every")

    def error(self, what):
        self.counts["errors"] += 1
        if self.tracebacks < 5:
            self.tracebacks += 1
            say(f"error while {what}:")
            traceback.print_exc(file=sys.stdout)
            sys.stdout.flush()

    # -- outer (raw socket) -> TUN

    def on_outer(self, data, src, tun):
        c = self.counts
        if self.args.local.version == 4:
            if len(data) < 20 or data[0] >> 4 != 4:
                c["drop_malformed"] += 1
                return
            ihl = (data[0] & 0x0F) * 4
            total = struct.unpack("!H", data[2:4])[0]
            src = ipaddress.ip_address(data[12:16])
            gre = data[ihl:min(total, len(data))]
        else:
            src = ipaddress.ip_address(src.split("%", 1)[0])
            gre = data
        if src != self.args.remote:
            c["drop_source"] += 1
            return
        if len(gre) < 4:
            c["drop_malformed"] += 1
            return
        flags = struct.unpack("!H", gre[:2])[0]
        hdr_len = 4 + 4 * sum(1 for f in (FLAG_C | FLAG_R, FLAG_K, FLAG_S) if flags & f)
        if len(gre) < hdr_len:
            c["drop_malformed"] += 1
            return
        hdr = self.sc["GreHeader"](gre)
        # RFC 2784: version 0 only (1 is PPTP's enhanced GRE), and bits 1-5 (routing, strict
        # source route, the top recursion bit) must be zero; bits 6-12 are ignored.
        if hdr.version != 0 or hdr.routing_present or hdr.strict_route_source \
                or hdr.recursion_control & 0b100:
            c["drop_malformed"] += 1
            return
        key = hdr.key if hdr.key_present else None
        if key != self.args.key:
            c["drop_key"] += 1
            return
        if hdr.chksum_present:
            if self.sc["checksum"](gre) != 0:
                c["drop_csum"] += 1
                return
            c["csum_rx"] += 1
        if hdr.seqnum_present:
            c["seq_rx"] += 1
            seq = hdr.sequence_number
            # RFC 1982 serial arithmetic: not newer than the last one seen means reordered.
            ahead = None if self.rx_seq is None else (seq - self.rx_seq) % 2**32
            if ahead is not None and (ahead == 0 or ahead >= 2**31):
                c["seq_reordered"] += 1
            else:
                self.rx_seq = seq
        inner = gre[hdr_len:]
        if hdr.proto == PROTO_KEEPALIVE and not inner:
            c["keepalives"] += 1
            return
        want = {PROTO_IPV4: 4, PROTO_IPV6: 6}.get(hdr.proto)
        if want is None or not inner or inner[0] >> 4 != want:
            c["drop_proto"] += 1
            return
        try:
            os.write(tun, inner)
        except OSError:
            c["tun_errors"] += 1
            return
        c["rx"] += 1
        c["rx_bytes"] += len(inner)
        self.maybe_log()

    # -- TUN -> outer

    def on_tun(self, packet, sock):
        c = self.counts
        version = packet[0] >> 4 if packet else 0
        proto = {4: PROTO_IPV4, 6: PROTO_IPV6}.get(version)
        if proto is None:
            c["tun_errors"] += 1
            return
        if version == 6 and len(packet) >= 40 and packet[24] == 0xFF and packet[25] & 0x0F == 2:
            # Link-scope IPv6 multicast (MLD reports for ff02::2 once forwarding is on, router
            # solicitations): the kernel's chatter about the TUN itself, kept out of the tunnel.
            c["tx_link_local"] += 1
            return
        seq = None
        if self.args.seq:
            seq = self.tx_seq
            self.tx_seq = (self.tx_seq + 1) & 0xFFFFFFFF
        frame = gre_frame(self.sc, proto, packet, key=self.args.key, seq=seq,
                          csum=self.args.csum)
        try:
            sock.sendto(frame, (str(self.args.remote), 0))
        except OSError:
            c["send_errors"] += 1
            return
        c["tx"] += 1
        c["tx_bytes"] += len(packet)
        self.maybe_log()


def run_tunnel(sc, args):
    flags = {"stop": None, "dump": False}

    def on_stop(signum, _frame):
        flags["stop"] = signal.Signals(signum).name

    def on_dump(_signum, _frame):
        flags["dump"] = True

    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGUSR1, on_dump)

    tun = open_tun(args)
    sock = outer_socket(args.local)
    sock.setblocking(False)
    peer = Peer(sc, args)

    forwarding = read_sysctl("/proc/sys/net/ipv4/ip_forward")
    if forwarding != "1":
        say(f"warning: net.ipv4.ip_forward is {forwarding} in this namespace: "
            f"keepalives will not be routed back (the caller must enable forwarding)")
    rp_all = read_sysctl("/proc/sys/net/ipv4/conf/all/rp_filter")
    if rp_all not in ("0", "?"):
        say(f"warning: net.ipv4.conf.all.rp_filter is {rp_all}: keepalives may be dropped")
    key = "none" if args.key is None else args.key
    say(f"ready tun={args.tun} local={args.local} remote={args.remote} key={key} "
        f"seq={int(args.seq)} csum={int(args.csum)} mtu={args.mtu} scapy={sc['version']} "
        f"pid={os.getpid()}")

    deadline = time.monotonic() + args.duration
    reason = "duration"
    while True:
        if flags["stop"]:
            reason = flags["stop"]
            break
        if flags["dump"]:
            flags["dump"] = False
            peer.stats("signal")
        left = deadline - time.monotonic()
        if left <= 0:
            break
        readable, _, _ = select.select([tun, sock, wake_r], [], [], min(left, 1.0))
        if wake_r in readable:
            try:
                os.read(wake_r, 512)
            except BlockingIOError:
                pass
        if sock in readable:
            for _ in range(BATCH):
                try:
                    data, addr = sock.recvfrom(65535)
                except (BlockingIOError, InterruptedError):
                    break
                try:
                    peer.on_outer(data, addr[0], tun)
                except Exception:
                    peer.error("decapsulating")
        if tun in readable:
            for _ in range(BATCH):
                try:
                    packet = os.read(tun, 65535)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError as e:
                    if e.errno == errno.EAGAIN:
                        break
                    raise
                try:
                    peer.on_tun(packet, sock)
                except Exception:
                    peer.error("encapsulating")
    peer.stats("exit")
    sock.close()
    os.close(tun)
    say(f"exit reason={reason}")


def main(argv):
    args = parse_args(argv)
    sc = load_scapy()
    if args.check:
        say(f"scapy {sc['version']} ok")
        return 0
    if args.send:
        send_one(sc, args)
        return 0
    run_tunnel(sc, args)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
