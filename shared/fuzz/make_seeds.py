#!/usr/bin/env python3
"""Writes the fuzz seed corpora under seeds/<target>/ from hand-built frames.

The frames are built here from the RFCs, not with grelay's own encoder, so that a bug in the
encoder cannot hide in its seeds: Linux ip_gre frames with each combination of C/K/S, PPTP
enhanced GRE frames with and without sequence/ack, and malformed frames in the spirit of
tcpdump's malformed GRE captures (truncated, reserved bits, versions 2..7, routing bit, bad
checksum, a length field larger than the bytes present).

Usage: python3 make_seeds.py   (rewrites seeds/<target> for every target; the output is deterministic)
"""

import os
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))

C, R, K, S, SSR, A = 0x8000, 0x4000, 0x2000, 0x1000, 0x0800, 0x0080
IPV4, IPV6, PPTP, CONTROL = 0x0800, 0x86DD, 0x880B, 0x88B5


def csum(data: bytes) -> int:
    """RFC 1071 Internet checksum, written out the slow obvious way."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ipv4_icmp_echo() -> bytes:
    """10.77.0.2 -> 10.77.0.1 ICMP echo request, id 0x1234 seq 1, payload 'grelay!!'."""
    icmp = struct.pack("!BBHHH", 8, 0, 0, 0x1234, 1) + b"grelay!!"
    icmp = icmp[:2] + struct.pack("!H", csum(icmp)) + icmp[4:]
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), 1, 0x4000, 64, 1, 0,
                      bytes([10, 77, 0, 2]), bytes([10, 77, 0, 1]))
    hdr = hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:]
    return hdr + icmp


def ipv6_no_next() -> bytes:
    """fd77::2 -> fd77::1, next header 59 (no next header), hop limit 64, no payload."""
    src = bytes.fromhex("fd77" + "00" * 13 + "02")
    dst = bytes.fromhex("fd77" + "00" * 13 + "01")
    return struct.pack("!IHBB", 0x60000000, 0, 59, 64) + src + dst


def gre(protocol: int, payload: bytes, c=False, k=None, s=None, extra_flags=0) -> bytes:
    """A GRE frame as Linux gre_build_header lays it out (checksum last, over everything)."""
    flags = (C if c else 0) | (K if k is not None else 0) | (S if s is not None else 0)
    hdr = struct.pack("!HH", flags | extra_flags, protocol)
    if c:
        hdr += b"\0\0\0\0"
    if k is not None:
        hdr += struct.pack("!I", k)
    if s is not None:
        hdr += struct.pack("!I", s)
    frame = hdr + payload
    if c:
        frame = frame[:4] + struct.pack("!H", csum(frame)) + frame[6:]
    return frame


def pptp(call_id: int, payload: bytes, seq=None, ack=None, length=None, extra_flags=0,
         version=1, protocol=PPTP, key=True) -> bytes:
    """A PPTP enhanced GRE frame (RFC 2637 section 4.1)."""
    flags = (K if key else 0) | (S if seq is not None else 0) | (A if ack is not None else 0)
    hdr = struct.pack("!HHHH", flags | extra_flags | version, protocol,
                      len(payload) if length is None else length, call_id)
    if seq is not None:
        hdr += struct.pack("!I", seq)
    if ack is not None:
        hdr += struct.pack("!I", ack)
    return hdr + payload


# PPP LCP Echo-Request (address/control ff 03, protocol c021, id 1, magic 0x12345678).
LCP_ECHO = bytes.fromhex("ff03c021" "09010008" "12345678")
KEY, SEQ = 42, 1


def gre_seeds() -> dict:
    v4, v6 = ipv4_icmp_echo(), ipv6_no_next()
    seeds = {}
    for c in (False, True):
        for k in (None, KEY):
            for s in (None, SEQ):
                name = "".join(n for n, on in (("c", c), ("k", k is not None), ("s", s is not None)) if on)
                seeds[f"ipv4_{name or 'plain'}"] = gre(IPV4, v4, c, k, s)
                seeds[f"ipv6_{name or 'plain'}"] = gre(IPV6, v6, c, k, s)
    seeds["control_k"] = gre(CONTROL, b"\x01\x00\x00\x08" + bytes(8), k=KEY)
    seeds["control_cks_empty"] = gre(CONTROL, b"", c=True, k=KEY, s=0xFFFFFFFF)
    seeds["empty_payload"] = gre(IPV4, b"")
    full = gre(IPV4, v4, True, KEY, SEQ)
    for cut in (0, 1, 3, 4, 6, 8, 11, 12, 15):
        seeds[f"truncated_cks_{cut}"] = full[:cut]
    bad = bytearray(full)
    bad[-1] ^= 0x01
    seeds["bad_checksum"] = bytes(bad)
    # Words summing to 0xffff: the checksum is +0, sent here as its other form -0 (0xffff).
    seeds["checksum_minus_zero"] = struct.pack("!HHHH", C, 0x7FFF, 0xFFFF, 0)
    for bit, name in ((R, "routing"), (SSR, "strict_route"), (0x0100, "recur1"),
                      (0x0700, "recur7"), (0x0008, "flags_low"), (0x00F8, "flags_all")):
        seeds[f"reserved_{name}"] = gre(IPV4, v4, k=KEY, extra_flags=bit)
    # RFC 1701 routing present: offset/routing fields followed by a SRE list.
    seeds["routing_sre"] = gre(IPV4, b"\0\0\0\0" + b"\x08\x00\x04\x04" + bytes(4) + v4, c=True,
                               extra_flags=R)
    for version in range(1, 8):
        seeds[f"version_{version}"] = gre(IPV4, v4, k=KEY, extra_flags=version)
    seeds["inner_len_too_large"] = gre(IPV4, v4[:2] + b"\xff\xff" + v4[4:], k=KEY)
    seeds["pptp_in_gre"] = pptp(0x0C3E, LCP_ECHO, seq=0)
    return seeds


def pptp_seeds() -> dict:
    seeds = {
        "data_seq": pptp(0x0C3E, LCP_ECHO, seq=0),
        "data_seq_ack": pptp(0x0C3E, LCP_ECHO, seq=6, ack=5),
        "ack_only": pptp(0x0C3E, b"", ack=5),
        "ack_only_eth_padding": pptp(0x0C3E, b"", ack=5) + bytes(14),
        "data_seq_empty": pptp(0x0001, b"", seq=0xFFFFFFFF),
        "data_trailing_bytes": pptp(0x8000, LCP_ECHO, seq=1) + b"\0\0",
        "ppp_ipv4": pptp(0x0C3E, b"\x21" + ipv4_icmp_echo(), seq=7, ack=6),
        "length_too_large": pptp(0x0C3E, LCP_ECHO, seq=0, length=0xFFFF),
        "length_one_over": pptp(0x0C3E, LCP_ECHO, seq=0, length=len(LCP_ECHO) + 1),
        "length_without_seq": pptp(0x0C3E, LCP_ECHO),
        "no_key_bit": pptp(0x0C3E, LCP_ECHO, seq=0, key=False),
        "checksum_bit": pptp(0x0C3E, LCP_ECHO, seq=0, extra_flags=C),
        "routing_bit": pptp(0x0C3E, LCP_ECHO, seq=0, extra_flags=R),
        "strict_route": pptp(0x0C3E, LCP_ECHO, seq=0, extra_flags=SSR),
        "recursion": pptp(0x0C3E, LCP_ECHO, seq=0, extra_flags=0x0300),
        "reserved_flags": pptp(0x0C3E, LCP_ECHO, seq=0, extra_flags=0x0040),
        "wrong_protocol": pptp(0x0C3E, LCP_ECHO, seq=0, protocol=IPV4),
        "version_0": pptp(0x0C3E, LCP_ECHO, seq=0, version=0),
        "gre_plain": gre(IPV4, ipv4_icmp_echo()),
    }
    for version in range(2, 8):
        seeds[f"version_{version}"] = pptp(0x0C3E, LCP_ECHO, seq=0, version=version)
    full = pptp(0x0C3E, LCP_ECHO, seq=6, ack=5)
    for cut in (0, 1, 3, 4, 7, 8, 11, 12, 15, 16, len(full) - 1):
        seeds[f"truncated_{cut}"] = full[:cut]
    return seeds


def write(target: str, seeds: dict) -> None:
    out = os.path.join(HERE, "seeds", target)
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    for name, data in sorted(seeds.items()):
        with open(os.path.join(out, name + ".bin"), "wb") as f:
            f.write(data)


def outer_seeds() -> dict:
    """Outer datagrams of every type, right and wrong sizes, and control messages."""
    ctl = lambda body: body
    seeds = {
        "initiation": bytes([1, 0, 0, 0]) + bytes(range(144)),
        "initiation_aes": bytes([1, 1, 0, 0]) + bytes(144),
        "initiation_short": bytes([1, 0, 0, 0]) + bytes(143),
        "initiation_reserved": bytes([1, 0, 0, 1]) + bytes(144),
        "response": bytes([2, 0, 0, 0]) + bytes(range(88)),
        "cookie_reply": bytes([3, 0, 0, 0]) + bytes(range(60)),
        "data_min": bytes([4, 0, 0, 0, 1, 2, 3, 4]) + bytes(8) + bytes(16),
        "data_frame": bytes([4, 0, 0, 0, 1, 2, 3, 4]) + struct.pack("!Q", 7) + bytes(40),
        "data_truncated": bytes([4, 0, 0, 0, 1]),
        "unknown_type": bytes([9, 0, 0, 0]) + bytes(28),
        "ctl_keepalive": ctl(b"\x01"),
        "ctl_probe": ctl(b"\x02" + struct.pack("!IQ", 1, 123456)),
        "ctl_echo": ctl(b"\x03" + struct.pack("!IQ", 1, 123456)),
        "ctl_config_request": ctl(b"\x04"),
        "ctl_assign": ctl(b"\x05\x03" + bytes([10, 77, 0, 2, 16]) + bytes(15) + b"\x02" + bytes([64]) + struct.pack("!H", 1420)),
        "ctl_assign_bad_len": ctl(b"\x05\x01" + bytes([10, 77, 0, 2, 33]) + bytes(19)),
    }
    return seeds


def inner_seeds() -> dict:
    """IPv4/IPv6 TCP SYNs with MSS options, and broken headers."""
    def tcp_syn(mss: int, options: bytes = b"") -> bytes:
        opts = struct.pack("!BBH", 2, 4, mss) + options
        opts += b"\x00" * (-len(opts) % 4)
        off = (20 + len(opts)) // 4
        return struct.pack("!HHIIBBHHH", 40000, 443, 1, 0, off << 4, 0x02, 65535, 0, 0) + opts
    seg = tcp_syn(1460, b"\x01\x03\x03\x07")
    v4 = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(seg), 1, 0x4000, 64, 6, 0,
                     bytes([10, 77, 0, 2]), bytes([10, 99, 0, 2])) + seg
    v6 = struct.pack("!IHBB16s16s", 0x60000000, len(seg), 6, 64,
                     bytes(15) + b"\x02", bytes(15) + b"\x01") + seg
    return {
        "ipv4_syn": v4,
        "ipv6_syn": v6,
        "ipv4_bad_ihl": b"\x44" + v4[1:],
        "ipv4_truncated": v4[:30],
        "tcp_option_len_zero": v4[:40] + b"\x02\x00\x05\xb4",
        "empty": b"",
    }


if __name__ == "__main__":
    write("gre", gre_seeds())
    write("pptp", pptp_seeds())
    write("outer", outer_seeds())
    write("handshake", outer_seeds())
    write("inner", inner_seeds())
