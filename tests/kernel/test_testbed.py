"""The Testbed itself: set-up, clean-up, and each kind of observation against hand-computed answers."""

from __future__ import annotations

import subprocess

import pytest

from kubenat.errors import KernelError
from kubenat.kernel import Testbed, _netns, build_packet, compare, leftover_namespaces

NAT_RULES = """\
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:KUBE-MARK-MASQ - [0:0]
-A PREROUTING -d 10.96.0.10/32 -p tcp -m tcp --dport 80 -j KUBE-MARK-MASQ
-A PREROUTING -d 10.96.0.10/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.244.2.7:8080
-A PREROUTING -d 10.96.0.11/32 -p udp -m udp --dport 53 -j DNAT --to-destination 10.244.2.8:5353
-A PREROUTING -d 10.96.0.12/32 -p tcp -m tcp --dport 80 -j REDIRECT --to-ports 9999
-A OUTPUT -d 10.96.0.10/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.244.2.7:8080
-A POSTROUTING -m mark --mark 0x4000/0x4000 -j MASQUERADE
-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -d 10.96.0.20/32 -p tcp -j REJECT --reject-with tcp-reset
-A FORWARD -d 10.96.0.21/32 -p udp -j REJECT --reject-with icmp-port-unreachable
-A FORWARD -d 10.96.0.22/32 -j DROP
-A FORWARD -d 10.96.0.23/32 -j REJECT --reject-with icmp-host-prohibited
-A OUTPUT -d 10.9.9.9/32 -p udp -m udp --dport 7779 -j DROP
-A OUTPUT -d 10.9.9.9/32 -p tcp -m tcp --dport 7778 -j REJECT --reject-with tcp-reset
COMMIT
"""


@pytest.fixture(scope="module")
def bed():
    with Testbed(sinks=2, routes={"10.244.3.0/24": "sink1", "10.0.0.0/24": "client"}) as tb:
        tb.load(NAT_RULES)
        yield tb


def test_names_and_cleanup() -> None:
    tb = Testbed()
    with tb:
        names = set(tb.names.values())
        assert names <= set(_netns.existing())
        assert all(name.startswith("kn-") for name in names)
        # Nothing was added to the caller's namespace: its interfaces carry no testbed address.
        ours = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True, check=True).stdout
        assert "10.253." not in ours and "fd00:253:" not in ours
    assert not names & set(_netns.existing())


def test_cleanup_after_exception() -> None:
    tb = Testbed()
    with pytest.raises(RuntimeError, match="boom"), tb:
        names = set(tb.names.values())
        assert names <= set(_netns.existing())
        raise RuntimeError("boom")
    assert not names & set(_netns.existing())
    assert not leftover_namespaces()


def test_cleanup_after_keyboard_interrupt() -> None:
    tb = Testbed()
    with pytest.raises(KeyboardInterrupt), tb:
        names = set(tb.names.values())
        raise KeyboardInterrupt
    assert not names & set(_netns.existing())


def test_cleanup_when_setup_fails() -> None:
    # A bad route is only noticed half-way through the set-up; everything made so far goes.
    tb = Testbed(routes={"10.244.9.0/24": "client"}, addresses={"eth0": ["not-an-address"]})
    with pytest.raises(KernelError), tb:
        pass  # pragma: no cover
    assert not set(tb.names.values()) & set(_netns.existing())


def test_refuses_existing_name() -> None:
    clash = "kn-clashtest-sink"
    subprocess.run(["ip", "netns", "add", clash], check=True)
    try:
        with pytest.raises(KernelError, match="already exist"), Testbed(tag="clashtest"):
            pass  # pragma: no cover
        # The pre-existing namespace is not ours: it must still be there, and nothing else was made.
        assert clash in _netns.existing()
        assert "kn-clashtest-node" not in _netns.existing()
    finally:
        subprocess.run(["ip", "netns", "del", clash], check=True)


def test_refuses_foreign_names() -> None:
    with pytest.raises(KernelError, match="must start with"):
        _netns.run(["true"], netns="default")


def test_dnat_with_masquerade_and_mark(bed: Testbed) -> None:
    obs = bed.inject(build_packet("tcp", "10.0.0.5", "10.96.0.10", 40000, 80))
    assert (obs.verdict, obs.dst, obs.dport) == ("ACCEPT", "10.244.2.7", 8080)
    # MASQUERADE picks the address of the interface the packet leaves on (eth1 → sink).
    assert obs.masquerade and obs.src == "10.253.2.1" and obs.out_interface == "eth1"
    assert obs.sink == "sink" and obs.mark == 0x4000
    assert obs.original is not None and obs.reply is not None
    assert (obs.original.src, obs.original.dst, obs.original.sport, obs.original.dport) == (
        "10.0.0.5",
        "10.96.0.10",
        40000,
        80,
    )
    assert (obs.reply.src, obs.reply.dst, obs.reply.sport, obs.reply.dport) == (
        "10.244.2.7",
        "10.253.2.1",
        8080,
        obs.sport,
    )
    expected = {
        "verdict": "ACCEPT",
        "dst": "10.244.2.7",
        "dport": 8080,
        "masquerade": True,
        "mark": 0x4000,
        "out_interface": "eth1",
        "local_delivery": False,
    }
    assert compare(obs, expected) == []
    assert compare(obs, {**expected, "dport": 8081}) == ["dport: kernel 8080, kubenat 8081"]


def test_emitted_bytes_have_final_checksums(bed: Testbed) -> None:
    from scapy.layers.inet import IP

    obs = bed.inject(build_packet("udp", "10.0.0.6", "10.96.0.11", 40001, 53, payload=b"hello"))
    assert obs.verdict == "ACCEPT" and (obs.dst, obs.dport, obs.masquerade) == ("10.244.2.8", 5353, False)
    assert obs.emitted is not None
    packet = IP(obs.emitted)
    wire = (packet.chksum, packet["UDP"].chksum)
    del packet.chksum, packet["UDP"].chksum
    assert wire == (IP(bytes(packet)).chksum, IP(bytes(packet))["UDP"].chksum)


def test_routes_to_other_sink_and_back_to_client(bed: Testbed) -> None:
    far, back = bed.inject_batch(
        [
            build_packet("udp", "10.0.0.5", "10.244.3.9", 40002, 53),
            build_packet("udp", "10.0.0.5", "10.0.0.9", 40003, 53),
        ]
    )
    assert (far.verdict, far.out_interface, far.sink) == ("ACCEPT", "eth2", "sink1")
    assert (back.verdict, back.out_interface, back.sink) == ("ACCEPT", "eth0", "client")


def test_redirect_is_local_delivery(bed: Testbed) -> None:
    obs = bed.inject(build_packet("tcp", "10.0.0.5", "10.96.0.12", 40004, 80))
    assert obs.verdict == "ACCEPT" and obs.local_delivery and obs.out_interface is None
    # REDIRECT sends to the primary address of the incoming interface.
    assert (obs.dst, obs.dport) == ("10.253.1.1", 9999)
    assert obs.reply is not None and (obs.reply.src, obs.reply.sport) == ("10.253.1.1", 9999)


def test_reject_variants(bed: Testbed) -> None:
    rst, unreach, prohibited = bed.inject_batch(
        [
            build_packet("tcp", "10.0.0.5", "10.96.0.20", 40005, 80),
            build_packet("udp", "10.0.0.5", "10.96.0.21", 40006, 53),
            build_packet("icmp", "10.0.0.5", "10.96.0.23", 77, 1),
        ]
    )
    assert (rst.verdict, rst.reject_with) == ("REJECT", "tcp-reset")
    assert (unreach.verdict, unreach.reject_with) == ("REJECT", "icmp-port-unreachable")
    assert (prohibited.verdict, prohibited.reject_with) == ("REJECT", "icmp-host-prohibited")
    assert rst.original is None and rst.mark is None  # no confirmed connection


def test_drop_gives_nothing(bed: Testbed) -> None:
    obs = bed.inject(build_packet("udp", "10.0.0.5", "10.96.0.22", 40007, 53))
    assert (obs.verdict, obs.reject_with, obs.emitted, obs.original) == ("DROP", None, None, None)
    assert compare(obs, {"verdict": "ACCEPT"}) == ["verdict: kernel DROP, kubenat ACCEPT"]


def test_output_path(bed: Testbed) -> None:
    dnat, dropped, rejected = bed.inject_batch(
        [
            build_packet("tcp", "10.253.2.1", "10.96.0.10", 40008, 80),
            build_packet("udp", "10.253.2.1", "10.9.9.9", 40009, 7779),
            build_packet("tcp", "10.253.2.1", "10.9.9.9", 40010, 7778),
        ],
        path="out",
    )
    # OUTPUT DNAT, then no MASQUERADE: the mark is only set in PREROUTING here.
    assert (dnat.verdict, dnat.dst, dnat.dport, dnat.src, dnat.masquerade) == (
        "ACCEPT",
        "10.244.2.7",
        8080,
        "10.253.2.1",
        False,
    )
    assert dnat.mark == 0 and dnat.out_interface == "eth1"
    assert dropped.verdict == "DROP"
    assert (rejected.verdict, rejected.reject_with) == ("REJECT", "tcp-reset")


def test_batch_of_a_thousand(bed: Testbed) -> None:
    sources = [f"10.1.{i // 200}.{i % 200 + 1}" for i in range(1000)]
    packets = [build_packet("tcp", src, "10.96.0.10", 30000 + i, 80) for i, src in enumerate(sources)]
    observations = bed.inject_batch(packets)
    assert len(observations) == 1000
    outcomes = {(o.verdict, o.dst, o.dport, o.masquerade) for o in observations}
    assert outcomes == {("ACCEPT", "10.244.2.7", 8080, True)}
    assert [o.original.sport for o in observations if o.original] == list(range(30000, 31000))


def test_same_source_goes_to_separate_rounds(bed: Testbed) -> None:
    packet = build_packet("udp", "10.0.0.5", "10.96.0.11", 40011, 53)
    first, second = bed.inject_batch([packet, packet])
    # Each is a fresh connection (conntrack flushed between rounds), so both are translated.
    assert first.original is not None and second.original is not None
    assert first.dst == second.dst == "10.244.2.8"


def test_ruleset_rejected_by_kernel(bed: Testbed) -> None:
    with pytest.raises(KernelError, match="refused"):
        bed.load("*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -j DROP\nCOMMIT\n")


def test_save_shows_loaded_rules(bed: Testbed) -> None:
    saved = bed.save(table="nat")
    assert "-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000" in saved


def test_load_accepts_a_ruleset(bed: Testbed) -> None:
    import kubenat

    ruleset = kubenat.Ruleset.parse(NAT_RULES)
    bed.load(ruleset)
    obs = bed.inject(build_packet("tcp", "10.0.0.5", "10.96.0.10", 40100, 80))
    assert (obs.dst, obs.dport) == ("10.244.2.7", 8080)


def test_reject_seen_even_when_output_drops_the_answer() -> None:
    rules = NAT_RULES.replace(":OUTPUT ACCEPT [0:0]\n-A FORWARD", ":OUTPUT DROP [0:0]\n-A FORWARD")
    assert ":OUTPUT DROP" in rules
    with Testbed() as tb:
        tb.load(rules)
        rst, unreach = tb.inject_batch(
            [
                build_packet("tcp", "10.0.0.5", "10.96.0.20", 40005, 80),
                build_packet("udp", "10.0.0.5", "10.96.0.21", 40006, 53),
            ]
        )
    assert (rst.verdict, rst.reject_with) == ("REJECT", "tcp-reset")
    assert (unreach.verdict, unreach.reject_with) == ("REJECT", "icmp-port-unreachable")
