"""The systems under test: how to start each one between the two namespaces.

Every system ends up with a tunnel whose far end is an address on the gateway host
(`server_ip`), where iperf3 listens: the same path (client ns → veth → gateway ns) for all.
Inner MTU 1420 wherever the system lets us set it (grelay's and WireGuard's default; OpenVPN
is set to it); Quincy keeps its default of 1400 (its `mtu` also sizes the QUIC packets).
"""

import os
import time

from . import net, util

TUNNEL_MTU = 1420


class Ctx:
    """What every system needs: binaries, the run's name prefix, a work directory."""

    def __init__(self, prefix, work, bins, tools):
        self.prefix = prefix
        self.work = work
        self.bins = bins  # grelay, gateway, loadgen
        self.tools = tools  # name -> path or None
        self._n = 0

    def dir(self, name):
        self._n += 1
        d = os.path.join(self.work, f"{self._n:03d}-{name}")
        os.makedirs(d, exist_ok=True)
        return d


def write(path, text, mode=0o600):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    return path


def wait_ping(ns, ip, timeout=20):
    """Pings (bounded) until one answer comes back."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        p = util.ns_run(ns, ["ping", "-n", "-c", "1", "-W", "1", ip], timeout=5, check=False)
        if p.returncode == 0:
            return True
        time.sleep(0.1)
    return False


class System:
    name = "?"
    label = "?"
    cipher = "?"

    def __init__(self, ctx):
        self.ctx = ctx
        self.procs = []  # the tunnel's own processes (CPU is charged to them)
        self.server_ip = None
        self.dir = None

    def available(self):
        return True, ""

    def start(self, pair):
        raise NotImplementedError

    def spawn(self, name, ns, cmd, env=None, cwd=None):
        p = util.Proc(name, ns, cmd, os.path.join(self.dir, name + ".log"), env=env, cwd=cwd)
        self.procs.append(p)
        return p

    def ready(self, pair):
        if not wait_ping(pair.client, self.server_ip):
            raise util.Fail(f"{self.name}: no ping through the tunnel to {self.server_ip}; "
                            f"logs in {self.dir}")

    def stop(self):
        for p in reversed(self.procs):
            p.stop()
        self.procs = []

    def logs(self):
        return self.dir


class Bare(System):
    name = "veth"
    label = "bare veth (ceiling)"
    cipher = "none"

    def start(self, pair):
        self.dir = self.ctx.dir(self.name)
        self.server_ip = net.GATEWAY_IP


class Grelay(System):
    """grelay over UDP, TLS or QUIC; `cipher` None = the client's `auto` (AES-256-GCM here)."""

    def __init__(self, ctx, transport="udp", cipher=None):
        super().__init__(ctx)
        self.transport = transport
        self.cipher_opt = cipher
        self.name = "grelay" if transport == "udp" else f"grelay-{transport}"
        if cipher:
            self.name += "-chacha" if "chacha" in cipher else "-" + cipher
        self.label = f"grelay ({transport})" + (f", {cipher}" if cipher else "")
        self.cipher = cipher or "AES-256-GCM (auto)"
        if transport != "udp":
            self.cipher += " inside TLS 1.3" if transport == "tls" else " inside QUIC"

    def available(self):
        for b in ("grelay", "gateway"):
            if not os.access(self.ctx.bins[b], os.X_OK):
                return False, f"{self.ctx.bins[b]} not built"
        return True, ""

    def start(self, pair):
        c = self.ctx
        self.dir = d = c.dir(self.name)
        keys = grelay_keys(c, d)
        gw_if, cl_if = c.prefix + "gw", c.prefix + "t"
        write(os.path.join(d, "gateway.toml"),
              gateway_toml(f"{net.GATEWAY_IP}:4747", gw_if, [("bench", keys["client_pub"])]))
        gw = self.spawn("gateway", pair.gateway,
                        [c.bins["gateway"], "run", "--config", os.path.join(d, "gateway.toml")])
        if not gw.wait_log("listening on udp", 20):
            raise util.Fail(f"{self.name}: the gateway did not start; {gw.logfile}:\n"
                            + gw.log_text(tail=20))
        pin = None
        if self.transport != "udp":
            if not gw.wait_log("listening on tls", 5):
                raise util.Unsupported(
                    f"this gateway build has no TLS/QUIC fallback listener (no 'listening on "
                    f"tls' in {gw.logfile})")
            pin = next((w for w in gw.log_text().split() if w.startswith("sha256:")), None)
            if not pin:
                raise util.Fail(f"{self.name}: no certificate pin in the gateway's log")
        write(os.path.join(d, "client.toml"),
              client_toml(cl_if, f"{net.GATEWAY_IP}:4747", keys["gateway_pub"],
                          self.transport, pin, self.cipher_opt))
        cl = self.spawn("client", pair.client,
                        [c.bins["grelay"], "--run-dir", os.path.join(d, "run"), "up",
                         os.path.join(d, "client.toml")])
        if not cl.wait_log(f"configured {cl_if}", 20):
            msg = cl.log_text(tail=20)
            if self.transport != "udp" and "transports" in msg:
                raise util.Unsupported(f"this client build has no [gateway] transports: {msg}")
            raise util.Fail(f"{self.name}: the client was not configured; {cl.logfile}:\n{msg}")
        self.server_ip = "10.77.0.1"


def grelay_keys(c, d):
    """Fresh gateway and client keys, written to gateway.key and client.key in `d`."""
    gkey = util.run([c.bins["gateway"], "genkey"]).stdout.strip()
    ckey = util.run([c.bins["grelay"], "genkey"]).stdout.strip()
    write(os.path.join(d, "gateway.key"), gkey + "\n")
    write(os.path.join(d, "client.key"), ckey + "\n")
    return {
        "gateway_pub": util.run([c.bins["gateway"], "pubkey"], input=gkey + "\n").stdout.strip(),
        "client_pub": util.run([c.bins["grelay"], "pubkey"], input=ckey + "\n").stdout.strip(),
    }


def gateway_toml(listen, interface, clients, extra_clients_toml=""):
    """grelay-gateway's configuration: no IPv6 pool, no egress NAT, the metrics endpoint on
    its default (loopback inside the gateway namespace), TLS/QUIC fallbacks on their
    defaults (on, port 443 of the listen address)."""
    text = f"""listen = "{listen}"
private_key_file = "gateway.key"
state_file = "state.json"

[tunnel]
interface = "{interface}"
mtu = {TUNNEL_MTU}
ipv6_pool = ""

[egress]
mode = "none"
"""
    for name, pub in clients:
        text += f'\n[[clients]]\nname = "{name}"\npublic_key = "{pub}"\n'
    return text + "\n" + extra_clients_toml


def client_toml(interface, endpoint, gateway_pub, transport="udp", pin=None, cipher=None):
    extra = f'transports = ["{transport}"]\ntls_pin = "{pin}"\n' if transport != "udp" else ""
    cipher = f'cipher = "{cipher}"\n' if cipher else ""
    return f"""[interface]
name = "{interface}"
private_key_file = "client.key"
mtu = {TUNNEL_MTU}
{cipher}
[gateway]
endpoint = "{endpoint}"
public_key = "{gateway_pub}"
{extra}
[routes]
prefixes = ["10.77.0.1/32"]
"""


class WireGuardUserspace(System):
    """wireguard-go, boringtun or gotatun: userspace WireGuard, configured with `wg`."""

    KINDS = {
        "wireguard-go": ("wireguard-go", "wireguard-go (Debian)"),
        "boringtun": ("boringtun-cli", "boringtun (Cloudflare)"),
        "gotatun": ("gotatun", "gotatun (Mullvad)"),
    }
    cipher = "ChaCha20-Poly1305"

    def __init__(self, ctx, kind):
        super().__init__(ctx)
        self.kind = kind
        self.name = kind
        self.tool, self.label = self.KINDS[kind]

    def available(self):
        for t in (self.tool, "wg"):
            if not self.ctx.tools.get(t):
                return False, f"{t} not found"
        return True, ""

    def command(self, ifname, logfile):
        exe = self.ctx.tools[self.tool]
        if self.kind == "wireguard-go":
            return [exe, "-f", ifname]
        return [exe, "-f", "--disable-drop-privileges", "-l", logfile, ifname]

    def start(self, pair):
        c = self.ctx
        self.dir = d = c.dir(self.name)
        wg = c.tools["wg"]
        keys = {}
        for side in ("c", "g"):
            priv = util.run([wg, "genkey"]).stdout.strip()
            pub = util.run([wg, "pubkey"], input=priv + "\n").stdout.strip()
            keys[side] = (write(os.path.join(d, f"{side}.key"), priv + "\n"), pub)
        # Interface names (and so UAPI socket paths, which all namespaces share) are unique
        # per start: gotatun leaves its socket behind, and `wg` would find a stale one.
        n = c._n
        ifs = {"c": f"{c.prefix}w{n}c", "g": f"{c.prefix}w{n}g"}
        ns = {"c": pair.client, "g": pair.gateway}
        self.sockets = [f"/var/run/wireguard/{ifs[side]}.sock" for side in ("g", "c")]
        for side in ("g", "c"):
            sock = f"/var/run/wireguard/{ifs[side]}.sock"
            util.register_file(sock)  # removed at stop() and at exit
            if os.path.exists(sock):
                raise util.Fail(f"{sock} exists already")
            self.spawn(f"{self.kind}-{side}", ns[side],
                       self.command(ifs[side], os.path.join(d, f"{self.kind}-{side}.out")),
                       env={"LOG_LEVEL": "error", "WG_LOG_LEVEL": "error"})
        for side in ("g", "c"):
            sock = f"/var/run/wireguard/{ifs[side]}.sock"
            end = time.monotonic() + 10
            while not os.path.exists(sock) and time.monotonic() < end:
                time.sleep(0.05)
            if not os.path.exists(sock):
                raise util.Fail(f"{self.name}: no UAPI socket {sock}; logs in {d}")
        util.ns_run(pair.gateway, [wg, "set", ifs["g"], "private-key", keys["g"][0],
                                   "listen-port", "51820", "peer", keys["c"][1],
                                   "allowed-ips", "10.66.0.2/32"])
        util.ns_run(pair.client, [wg, "set", ifs["c"], "private-key", keys["c"][0],
                                  "peer", keys["g"][1], "allowed-ips", "10.66.0.1/32",
                                  "endpoint", f"{net.GATEWAY_IP}:51820"])
        for side, ip in (("g", "10.66.0.1/24"), ("c", "10.66.0.2/24")):
            util.run(["ip", "-n", ns[side], "addr", "add", ip, "dev", ifs[side]])
            util.run(["ip", "-n", ns[side], "link", "set", ifs[side], "mtu", str(TUNNEL_MTU),
                      "up"])
        self.server_ip = "10.66.0.1"

    def stop(self):
        super().stop()
        for sock in getattr(self, "sockets", []):
            util.remove_file(sock)


class OpenVPN(System):
    name = "openvpn"
    label = "OpenVPN (Debian, userspace, no DCO)"
    cipher = "AES-256-GCM"

    def available(self):
        for t in ("openvpn", "openssl"):
            if not self.ctx.tools.get(t):
                return False, f"{t} not found"
        return True, ""

    def start(self, pair):
        c = self.ctx
        self.dir = d = c.dir(self.name)
        fp = {}
        for side in ("s", "c"):
            util.run([c.tools["openssl"], "req", "-x509", "-newkey", "ec", "-pkeyopt",
                      "ec_paramgen_curve:prime256v1", "-nodes", "-subj", f"/CN=gbench-{side}",
                      "-days", "2", "-keyout", os.path.join(d, f"{side}.key"),
                      "-out", os.path.join(d, f"{side}.crt")])
            out = util.run([c.tools["openssl"], "x509", "-in", os.path.join(d, f"{side}.crt"),
                            "-noout", "-fingerprint", "-sha256"]).stdout
            fp[side] = out.strip().split("=", 1)[1]
        dev = c.prefix + "ov"
        common = ["--dev", dev, "--dev-type", "tun", "--proto", "udp", "--tun-mtu",
                  str(TUNNEL_MTU), "--disable-dco", "--data-ciphers", "AES-256-GCM",
                  "--verb", "3", "--dh", "none"]
        self.spawn("openvpn-g", pair.gateway, [
            c.tools["openvpn"], "--mode", "p2p", "--tls-server", "--local", net.GATEWAY_IP,
            "--lport", "1194", "--ifconfig", "10.88.0.1", "10.88.0.2",
            "--cert", os.path.join(d, "s.crt"), "--key", os.path.join(d, "s.key"),
            "--peer-fingerprint", fp["c"]] + common)
        cl = self.spawn("openvpn-c", pair.client, [
            c.tools["openvpn"], "--tls-client", "--remote", net.GATEWAY_IP, "1194",
            "--nobind", "--ifconfig", "10.88.0.2", "10.88.0.1",
            "--cert", os.path.join(d, "c.crt"), "--key", os.path.join(d, "c.key"),
            "--peer-fingerprint", fp["s"]] + common)
        if not cl.wait_log("Initialization Sequence Completed", 20):
            raise util.Fail(f"openvpn: not connected; {cl.logfile}:\n" + cl.log_text(tail=20))
        self.server_ip = "10.88.0.1"


class Quincy(System):
    name = "quincy"
    label = "Quincy (QUIC, Noise mode)"
    cipher = "QUIC/Noise (ChaCha20-Poly1305)"

    def available(self):
        for t in ("quincy-server", "quincy-client", "wg"):
            if not self.ctx.tools.get(t):
                return False, f"{t} not found"
        return True, ""

    def start(self, pair):
        c = self.ctx
        self.dir = d = c.dir(self.name)
        wg = c.tools["wg"]  # Quincy's "standard" Noise keys are plain X25519, as WireGuard's
        keys = {}
        for side in ("s", "c"):
            priv = util.run([wg, "genkey"]).stdout.strip()
            keys[side] = (priv, util.run([wg, "pubkey"], input=priv + "\n").stdout.strip())
        write(os.path.join(d, "users.toml"),
              f'[users.bench]\nauthorized_keys = ["{keys["c"][1]}"]\n')
        write(os.path.join(d, "server.toml"), f"""name = "gbench"
interface_name = "{c.prefix}qs"
bind_address = "{net.GATEWAY_IP}"
bind_port = 55555
tunnel_network = "10.99.0.1/24"
users_file = "{os.path.join(d, 'users.toml')}"

[protocol]
mode = "noise"
key_exchange = "standard"
private_key = "{keys['s'][0]}"

[log]
level = "warn"
""")
        write(os.path.join(d, "client.toml"), f"""connection_string = "{net.GATEWAY_IP}:55555"

[protocol]
mode = "noise"
key_exchange = "standard"
server_public_key = "{keys['s'][1]}"
private_key = "{keys['c'][0]}"

[network]
interface_name = "{c.prefix}qc"

[log]
level = "info"
""")
        self.spawn("quincy-server", pair.gateway,
                   [c.tools["quincy-server"], "--config-path", os.path.join(d, "server.toml")])
        time.sleep(0.3)
        cl = self.spawn("quincy-client", pair.client,
                        [c.tools["quincy-client"], "--config-path",
                         os.path.join(d, "client.toml")])
        if not cl.wait_log("Created interface", 20):
            raise util.Fail("quincy: client not connected; " + cl.logfile + ":\n"
                            + cl.log_text(tail=20))
        self.server_ip = "10.99.0.1"


DEFAULT = ["veth", "grelay", "grelay-tls", "grelay-quic", "wireguard-go", "boringtun",
           "gotatun", "openvpn", "quincy"]
EXTRA = ["grelay-chacha"]


def make(name, ctx):
    if name == "veth":
        return Bare(ctx)
    if name == "grelay":
        return Grelay(ctx, "udp")
    if name == "grelay-tls":
        return Grelay(ctx, "tls")
    if name == "grelay-quic":
        return Grelay(ctx, "quic")
    if name == "grelay-chacha":
        return Grelay(ctx, "udp", cipher="chacha20-poly1305")
    if name in WireGuardUserspace.KINDS:
        return WireGuardUserspace(ctx, name)
    if name == "openvpn":
        return OpenVPN(ctx)
    if name == "quincy":
        return Quincy(ctx)
    raise ValueError(name)
