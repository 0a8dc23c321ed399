#!/usr/bin/env bash
# Installs the Debian packages the demo and the tests use, if any is missing (idempotent; asks
# apt only when something is missing). Needs root.
#
#   iproute2 nftables conntrack   namespaces, veth, NAT routers, rebinding
#   tshark                        captures and Wireshark's verdict on our GRE
#   iputils-ping iperf3           ping and throughput through the tunnel
#   python3 python3-scapy         the userspace GRE far end (the kernel here has no GRE devices)
#   libcap2-bin binutils          the gateway container image (setcap, strip)
set -euo pipefail

packages=(iproute2 nftables conntrack tshark iputils-ping iperf3 python3 python3-scapy
          libcap2-bin binutils ca-certificates)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "missing Debian packages: ${missing[*]} (run as root, or apt-get install them)" >&2
    exit 1
fi
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
echo 'wireshark-common wireshark-common/install-setuid boolean false' | debconf-set-selections
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
