"""The test network: a client namespace and a gateway namespace joined by one veth pair.

    client ns  <name>c   198.18.0.1/24 ──veth── 198.18.0.2/24   <name>g  gateway ns

The veth is created with both ends already inside the namespaces, so nothing of it ever
exists in the root namespace; no namespace has a route anywhere else. A fresh pair is made
for every system and round (cheap), so no state of one system leaks into the next.
An optional third namespace (the load generator's) hangs off the gateway on 198.18.1.0/24.
"""

from . import util

CLIENT_IP = "198.18.0.1"
GATEWAY_IP = "198.18.0.2"
LOADGEN_NET = "198.18.1"
LOADGEN_GW_IP = "198.18.1.1"  # the gateway's address on the load generator's link
LOADGEN_IP = "198.18.1.2"


class Pair:
    def __init__(self, prefix, index):
        base = f"{prefix}n{index}"
        self.client = base + "c"
        self.gateway = base + "g"
        self.loadgen = None
        self._base = base
        util.add_namespace(self.client)
        util.add_namespace(self.gateway)
        ca, ga = base + "a", base + "b"
        util.run(["ip", "link", "add", "name", ca, "netns", self.client, "type", "veth",
                  "peer", "name", ga, "netns", self.gateway])
        util.run(["ip", "-n", self.client, "addr", "add", CLIENT_IP + "/24", "dev", ca])
        util.run(["ip", "-n", self.gateway, "addr", "add", GATEWAY_IP + "/24", "dev", ga])
        util.run(["ip", "-n", self.client, "link", "set", ca, "up"])
        util.run(["ip", "-n", self.gateway, "link", "set", ga, "up"])
        self.client_if, self.gateway_if = ca, ga

    def add_loadgen(self, extra_sources=0):
        """A third namespace on its own veth to the gateway; `extra_sources` more addresses
        (198.18.1.10, .11, …) for floods from many sources. Returns their list."""
        self.loadgen = self._base + "l"
        util.add_namespace(self.loadgen)
        la, lb = self._base + "x", self._base + "y"
        util.run(["ip", "link", "add", "name", la, "netns", self.loadgen, "type", "veth",
                  "peer", "name", lb, "netns", self.gateway])
        util.run(["ip", "-n", self.loadgen, "addr", "add", LOADGEN_IP + "/24", "dev", la])
        util.run(["ip", "-n", self.gateway, "addr", "add", LOADGEN_GW_IP + "/24", "dev", lb])
        sources = []
        for i in range(extra_sources):
            ip = f"{LOADGEN_NET}.{10 + i}"
            util.run(["ip", "-n", self.loadgen, "addr", "add", ip + "/24", "dev", la])
            sources.append(ip)
        util.run(["ip", "-n", self.loadgen, "link", "set", la, "up"])
        util.run(["ip", "-n", self.gateway, "link", "set", lb, "up"])
        return sources

    def close(self):
        for ns in (self.loadgen, self.gateway, self.client):
            if ns:
                util.del_namespace(ns)
