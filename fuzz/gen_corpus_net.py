#!/usr/bin/env python3
"""Writes the seed inputs of fuzz/corpus/net/ (the layout is described in fuzz_net.c).

Each seed is: mode, features, a transmit chain (segment lengths and bytes), receive chains
(segments, which are readable, lengths), the received header and the frame. One seed per
path of net_tx_split / net_hdr_check_tx / net_hdr_fix_rx / net_rx_fill, valid and not.
Run from anywhere: python3 fuzz/gen_corpus_net.py. Inputs that once found a bug are kept
beside the seeds under names starting with "regress-".
"""
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "net")

F_CSUM, F_GUEST_CSUM, F_MTU, F_MAC = 0, 1, 3, 5
F_GUEST_TSO4, F_GUEST_TSO6, F_GUEST_ECN = 7, 8, 9
F_HOST_TSO4, F_HOST_TSO6, F_HOST_ECN, F_MRG_RXBUF = 11, 12, 13, 15
NEEDS_CSUM, DATA_VALID = 1, 2
GSO_NONE, GSO_TCPV4, GSO_UDP, GSO_TCPV6, GSO_ECN = 0, 1, 3, 4, 0x80
MAX_FRAME = 65550

ALL = sum(1 << b for b in (F_CSUM, F_GUEST_CSUM, F_GUEST_TSO4, F_GUEST_TSO6, F_GUEST_ECN,
                           F_HOST_TSO4, F_HOST_TSO6, F_HOST_ECN, F_MRG_RXBUF))


def hdr(flags=0, gso=GSO_NONE, hdr_len=0, gso_size=0, start=0, off=0, nb=0):
    return struct.pack("<BBHHHHH", flags, gso, hdr_len, gso_size, start, off, nb)


def eth_frame(n, ethertype=0x0800):
    base = b"\x52\x54\x00\x00\x00\x01\x52\x54\x00\x00\x00\x02" + struct.pack(">H", ethertype)
    return (base + bytes((i * 7 + 3) & 0xFF for i in range(max(0, n - 14))))[:n]


def seed(features=0, mergeable=False, pop_end=0, tx=(), tx_bytes=b"", rx=(), max_chains=0,
         rx_hdr=b"\0" * 12, frame_len=60, frame=None, cstart=34, coff=6):
    """tx: segment lengths; rx: list of (lengths, readable mask); frame_len: u16 field."""
    assert len(tx) <= 255 and len(rx) <= 16
    mode = (1 if mergeable else 0) | (pop_end << 1)
    out = struct.pack("<BQBBBHHH", mode, features, len(tx), len(rx), max_chains, frame_len,
                      cstart, coff)
    out += b"".join(struct.pack("<H", x) for x in tx)
    for lens, readable in rx:
        assert len(lens) <= 7
        out += struct.pack("<BB", len(lens), readable)
        out += b"".join(struct.pack("<H", x) for x in lens)
    out += rx_hdr
    out += tx_bytes.ljust(sum(tx), b"\0")[:sum(tx)]
    if frame is None:
        n = MAX_FRAME + 1 if frame_len == 0xFFFF else MAX_FRAME if frame_len == 0xFFFE else frame_len
        frame = eth_frame(min(n, 3000))  # the rest is zero-filled by the harness
    return out + frame


TCP_GSO = hdr(NEEDS_CSUM, GSO_TCPV4, 54, 1448, 34, 16)


def tcp_frame(v6=False, vlan=False, payload=4000):
    """A TSO frame a driver would send: Ethernet (802.1Q tag optional), IPv4 or IPv6, TCP
    with ACK|PSH|FIN, payload bytes: what net_gso_segment cuts into segments."""
    eth = b"\x52\x54\x00\x00\x00\x01\x52\x54\x00\x00\x00\x02"
    if vlan:
        eth += b"\x81\x00\x00\x05"
    tcp = struct.pack(">HHIIBBHHH", 40000, 80, 0xfffff000, 1, 5 << 4, 0x19, 65535, 0, 0)
    if v6:
        ip = struct.pack(">IHBB", 6 << 28, 20 + payload, 6, 64) + bytes(range(1, 33))
        eth += b"\x86\xdd"
    else:
        ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 40 + payload, 0x1234, 0x4000, 64, 6, 0,
                         b"\x0a\x00\x02\x0f", b"\x0a\x00\x02\x02")
        eth += b"\x08\x00"
    return eth + ip + tcp + bytes((i * 131) & 0xFF for i in range(payload))


def tso_seed(v6=False, vlan=False, payload=4000, mss=1448):
    f = tcp_frame(v6, vlan, payload)
    l4 = 14 + (4 if vlan else 0) + (40 if v6 else 20)
    h = hdr(NEEDS_CSUM, GSO_TCPV6 if v6 else GSO_TCPV4, l4 + 20, mss, l4, 16)
    return seed(ALL, tx=[12, len(f)], tx_bytes=h + f)
SEEDS = {
    # Transmit.
    "seed-tx-one-segment": seed(tx=[12 + 60], tx_bytes=hdr() + eth_frame(60)),
    "seed-tx-header-split": seed(tx=[5, 4, 3 + 20, 40], tx_bytes=hdr() + eth_frame(60)),
    "seed-tx-header-alone": seed(tx=[12, 1514], tx_bytes=hdr() + eth_frame(1514)),
    "seed-tx-csum": seed(ALL, tx=[12, 100], tx_bytes=hdr(NEEDS_CSUM, 0, 0, 0, 34, 6) + eth_frame(100)),
    "seed-tx-csum-not-negotiated": seed(0, tx=[12, 100], tx_bytes=hdr(NEEDS_CSUM, 0, 0, 0, 34, 6)),
    "seed-tx-csum-past-end": seed(ALL, tx=[12, 40], tx_bytes=hdr(NEEDS_CSUM, 0, 0, 0, 34, 6)),
    "seed-tx-tso4": seed(ALL, tx=[12, 9000], tx_bytes=TCP_GSO + eth_frame(9000)),
    "seed-tx-tso6-ecn": seed(ALL, tx=[12, 9000], tx_bytes=hdr(NEEDS_CSUM, GSO_TCPV6 | GSO_ECN, 74, 1428, 54, 16)),
    # Well-formed TSO frames, through net_gso_segment's whole loop.
    "seed-tx-tso4-segments": tso_seed(),
    "seed-tx-tso6-segments": tso_seed(v6=True, payload=3000, mss=1000),
    "seed-tx-tso4-vlan-one-segment": tso_seed(vlan=True, payload=500),
    "seed-tx-tso-no-mss": seed(ALL, tx=[12, 9000], tx_bytes=hdr(NEEDS_CSUM, GSO_TCPV4, 54, 0, 34, 16)),
    "seed-tx-ufo": seed(ALL, tx=[12, 9000], tx_bytes=hdr(NEEDS_CSUM, GSO_UDP, 42, 1400, 34, 6)),
    "seed-tx-max-frame": seed(tx=[12] + [0x3FFF] * 4 + [MAX_FRAME - 4 * 0x3FFF]),
    "seed-tx-over-max": seed(tx=[12] + [0x3FFF] * 4 + [MAX_FRAME - 4 * 0x3FFF + 1]),
    "seed-tx-runt": seed(tx=[12 + 13]),
    "seed-tx-short-header": seed(tx=[7, 4]),
    "seed-tx-many-segments": seed(tx=[1] * 12 + [64] * 200),
    "seed-tx-empty-segments": seed(tx=[0, 12, 0, 0, 60, 0]),
    # Receive header fix-up.
    "seed-rx-data-valid": seed(0, rx=[([1526], 0)], rx_hdr=hdr(DATA_VALID)),
    "seed-rx-partial-csum-completed": seed(0, rx=[([1526], 0)], rx_hdr=hdr(NEEDS_CSUM, 0, 0, 0, 34, 6), frame_len=100),
    "seed-rx-partial-csum-passed": seed(1 << F_GUEST_CSUM, rx=[([1526], 0)], rx_hdr=hdr(NEEDS_CSUM, 0, 0, 0, 34, 6), frame_len=100),
    "seed-rx-gso-accepted": seed(ALL, True, rx=[([4096], 0)] * 3, rx_hdr=TCP_GSO, frame_len=9000),
    "seed-rx-gso-refused": seed(1 << F_GUEST_CSUM, rx=[([4096], 0)], rx_hdr=TCP_GSO, frame_len=3000),
    "seed-rx-bad-flags": seed(ALL, rx=[([1526], 0)], rx_hdr=hdr(0x80)),
    # Receive fill.
    "seed-rx-single": seed(rx=[([1526], 0)], frame_len=1000),
    "seed-rx-single-split": seed(rx=[([4, 4, 4, 500, 600], 0)], frame_len=1000),
    "seed-rx-single-too-small": seed(rx=[([1000], 0)], frame_len=1000),
    "seed-rx-none-posted": seed(rx=[], frame_len=100),
    "seed-rx-mergeable-three": seed(1 << F_MRG_RXBUF, True, rx=[([1000], 0), ([600, 400], 0), ([2000], 0), ([2000], 0)], frame_len=2500),
    "seed-rx-mergeable-short": seed(1 << F_MRG_RXBUF, True, rx=[([1000], 0), ([1000], 0)], frame_len=2500),
    "seed-rx-mergeable-max-chains": seed(1 << F_MRG_RXBUF, True, rx=[([1000], 0)] * 3, max_chains=2, frame_len=2500),
    "seed-rx-mergeable-pop-fails": seed(1 << F_MRG_RXBUF, True, pop_end=1, rx=[([1000], 0)], frame_len=2500),
    "seed-rx-mergeable-big": seed(ALL, True, rx=[([0x3FFF] * 2, 0)] * 3, frame_len=0xFFFE),
    "seed-rx-over-max": seed(ALL, True, rx=[([0x3FFF] * 7, 0)] * 2, frame_len=0xFFFF),
    "seed-rx-readable-segment": seed(rx=[([100, 1500], 1)], frame_len=100),
    "seed-rx-tiny-buffer": seed(rx=[([11], 0)], frame_len=100),
    "seed-rx-tiny-later-buffer": seed(1 << F_MRG_RXBUF, True, rx=[([100], 0), ([8], 0)], frame_len=200),
    "seed-rx-empty-segments": seed(1 << F_MRG_RXBUF, True, rx=[([0, 12, 0, 30], 0), ([0, 200], 4)], frame_len=100),
    "seed-rx-zero-frame": seed(rx=[([12], 0)], frame_len=0),
    # net_csum_complete edges.
    "seed-csum-odd": seed(frame_len=61, cstart=34, coff=6),
    "seed-csum-past-end": seed(frame_len=40, cstart=34, coff=6),
    "seed-csum-huge": seed(frame_len=100, cstart=0xFFFF, coff=0xFFFF),
}


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
    print("wrote %d seeds to %s" % (len(SEEDS), OUT))


if __name__ == "__main__":
    main()
