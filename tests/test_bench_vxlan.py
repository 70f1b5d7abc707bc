"""Buffer calls of flannel encapsulation (the VXLAN fast path): byte for byte and error for error
what the single-packet calls give."""

from __future__ import annotations

from array import array

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP, UDP

import kubenat
from kubenat import _core


def node(me: int, **config: object) -> _core.Encapsulator:
    leases = [
        (f"10.244.{n}.0/24", f"192.168.50.{n}", f"02:aa:00:00:00:{n:02x}", f"02:00:00:00:00:{n:02x}")
        for n in range(1, 5)
        if n != me
    ]
    leases.append(("10.245.0.16/28", "192.168.50.30", "02:aa:00:00:00:30", None))  # no underlay MAC
    leases.append(("10.246.0.0/24", "fd00::2", "02:aa:00:00:00:31", "02:00:00:00:00:31"))  # IPv6 peer
    return _core.Encapsulator(
        "vxlan",
        public_ip=f"192.168.50.{me}",
        public_ipv6="fd00::1",
        underlay_mac=f"02:00:00:00:00:{me:02x}",
        vtep_mac=f"02:aa:00:00:00:{me:02x}",
        leases=leases,
        mtu=1450,
        **config,  # type: ignore[arg-type]
    )


inner_packets = st.one_of(
    st.builds(
        lambda net, host, sport, dport, tos, ident, frag, payload, udp: bytes(
            IP(src="10.244.1.5", dst=f"{net}.{host}", tos=tos, id=ident, frag=frag)
            / (UDP(sport=sport, dport=dport) if udp else TCP(sport=sport, dport=dport))
            / payload
        ),
        st.sampled_from(["10.244.2", "10.244.3", "10.244.1", "10.245.0", "10.246.0", "8.8.8"]),
        st.integers(0, 255),
        st.integers(0, 65535),
        st.integers(0, 65535),
        st.integers(0, 255),
        st.integers(0, 65535),
        st.sampled_from([0, 0, 0, 1]),
        st.binary(max_size=80),
        st.booleans(),
    ),
    st.binary(max_size=60),
)


def pack(items: list[bytes], gap: int) -> tuple[bytes, list[int], list[int]]:
    data, offsets, lengths = b"", [], []
    for p in items:
        data += b"\xee" * gap
        offsets.append(len(data))
        lengths.append(len(p))
        data += p
    return data, offsets, lengths


def unpack(result: tuple[bytearray, array[int], array[int], dict[int, kubenat.KubenatError]]) -> list[object]:
    out, offsets, lengths, errors = result
    assert len(offsets) == len(lengths)
    spans = enumerate(zip(offsets, lengths, strict=True))
    return [errors[i] if i in errors else bytes(out[o : o + n]) for i, (o, n) in spans]


def same(a: object, b: object) -> bool:
    if isinstance(a, Exception) or isinstance(b, Exception):
        return type(a) is type(b) and str(a) == str(b)
    return a == b


@given(
    st.lists(inner_packets, max_size=30),
    st.integers(0, 65535),
    st.sampled_from(["ethernet", "ip"]),
    st.booleans(),
    st.sampled_from([(False, 0), (True, 0), (True, 0x481234)]),
    st.integers(0, 3),
    st.integers(0, 2**32 - 1),
)
def test_buffer_calls_equal_single_packet_calls(
    packets: list[bytes],
    ip_id: int,
    link: str,
    udp_checksum: bool,
    gbp_mark: tuple[bool, int],
    gap: int,
    seed: int,
) -> None:
    gbp, mark = gbp_mark
    a = node(1, udp_checksum=udp_checksum, gbp=gbp, hash_seed=seed)
    b = node(2, udp_checksum=udp_checksum, gbp=gbp, hash_seed=seed)
    data, offsets, lengths = pack(packets, gap)
    got = unpack(a.encap_buffer(data, offsets, lengths, ip_id=ip_id, mark=mark, link=link))
    want = a.encap_batch(packets, ip_id=ip_id, mark=mark, link=link)
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert same(g, w), (g, w)
    # what node 2 receives: every frame, some with a byte flipped
    frames = [f for f in want if isinstance(f, bytes)]
    frames = [f if i % 3 else f[:20] + bytes([f[20] ^ 1]) + f[21:] for i, f in enumerate(frames)]
    data, offsets, lengths = pack(frames, gap)
    got = unpack(b.decap_buffer(data, offsets, lengths, link=link))
    want = b.decap_batch(frames, link=link)
    for g, w in zip(got, want, strict=True):
        assert same(g, w), (g, w)


def test_offsets_and_lengths_take_numpy_arrays_lists_and_arrays() -> None:
    a, b = node(1), node(2)
    pkts = [bytes(IP(src="10.244.1.5", dst="10.244.2.9") / TCP(sport=1000 + i, dport=80)) for i in range(50)]
    data = b"".join(pkts)
    offs = [40 * i for i in range(50)]
    want = a.encap_batch(pkts)
    for o, n in [
        (offs, [40] * 50),
        (np.array(offs), np.full(50, 40)),
        (np.array(offs, np.uint64), np.full(50, 40, np.uint32)),
        (array("Q", offs), array("I", [40] * 50)),
    ]:
        frames, fo, fl, errors = a.encap_buffer(data, o, n)
        assert not errors
        assert unpack((frames, fo, fl, errors)) == want
        assert len(frames) == sum(len(f) for f in want)  # type: ignore[arg-type]
        assert np.asarray(fo).dtype == np.uint64 and np.asarray(fl).dtype == np.uint32
    inner, _, _, errors = b.decap_buffer(frames, fo, fl)
    assert not errors and bytes(inner) == data
    # a memoryview and a numpy uint8 array are read as well
    assert unpack(a.encap_buffer(memoryview(data), offs, [40] * 50)) == want
    assert unpack(a.encap_buffer(np.frombuffer(data, np.uint8), offs, [40] * 50)) == want


def test_bad_spans_are_invalid_arguments() -> None:
    a = node(1)
    with pytest.raises(kubenat.InvalidArgument, match=r"offsets\[1\]"):
        a.encap_buffer(b"x" * 10, [0, 8], [4, 4])
    with pytest.raises(kubenat.InvalidArgument, match="lengths"):
        a.encap_buffer(b"x" * 10, [0, 1], [4])
    with pytest.raises(kubenat.InvalidArgument, match=r"offsets\[0\]"):
        a.decap_buffer(b"x" * 10, np.array([-1]), [4])
    with pytest.raises(kubenat.InvalidArgument, match="data"):
        a.decap_buffer("text", [0], [4])  # type: ignore[arg-type]
    with pytest.raises(kubenat.InvalidArgument):
        a.encap_buffer(b"x", [0], [1], link="token-ring")


def test_other_backends_use_the_same_call() -> None:
    peer = ("10.244.2.0/24", "192.168.50.2", None, None)
    udp = _core.Encapsulator("udp", public_ip="192.168.50.1", leases=[peer])
    pkts = [
        bytes(IP(src="10.244.1.5", dst=f"10.244.{2 + i % 2}.9") / UDP(sport=i, dport=53)) for i in range(20)
    ]
    data, offsets, lengths = pack(pkts, 1)
    got = unpack(udp.encap_buffer(data, offsets, lengths, link="ip"))
    for g, w in zip(got, udp.encap_batch(pkts, link="ip"), strict=True):
        assert same(g, w)
