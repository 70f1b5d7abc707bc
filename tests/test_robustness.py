"""Robustness of the public API on hostile input: only kubenat's own exceptions come out.

Hypothesis throws random and mutated bytes, text and manifests at every entry point that reads
outside data. Anything but a :class:`kubenat.KubenatError` (a ``TypeError``, ``KeyError``,
``IndexError``, a pyo3 ``PanicException``, ...) is a bug: it would surface as a traceback to a
user holding a bad pcap or a hand-edited manifest.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kubenat
from kubenat import InternalError, KubenatError, Packet, k8s
from kubenat.proxy import build_text
from proxy_cases import config, load_cases

CASES = load_cases()
MANIFESTS: list[dict[str, Any]] = [o for c in CASES for o in c.objects]

# --- helpers -----------------------------------------------------------------------------------


def only_kubenat_errors(call: Any, *args: Any, **kwargs: Any) -> Any:
    """Calls and returns, or returns the KubenatError raised; any other exception propagates."""
    try:
        return call(*args, **kwargs)
    except KubenatError as exc:
        assert str(exc), f"{type(exc).__name__} without a message"
        return exc


json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(
        [
            "",
            "TCP",
            "UDP",
            "SCTP",
            "10.0.0.1",
            "fd00::1",
            "80",
            "http",
            "ClusterIP",
            "NodePort",
            "LoadBalancer",
            "ExternalName",
            "Local",
            "Cluster",
            "10.0.0.0/8",
            "-1",
            "65536",
            "None",
        ]
    ),
)
junk = st.recursive(
    json_leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(
            st.one_of(st.text(max_size=8), st.sampled_from(["spec", "ports", "metadata", "kind"])),
            inner,
            max_size=4,
        ),
    ),
    max_leaves=12,
)


def paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside nested dicts and lists."""
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += paths(v, (*prefix, i))
    return out


def replace_at(obj: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    parent = obj
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    return obj


@st.composite
def mutated_manifest(draw: st.DrawFn) -> Any:
    """A real Service/EndpointSlice from the kube-proxy cases with one to three values replaced
    by junk (or deleted)."""
    obj = copy.deepcopy(draw(st.sampled_from(MANIFESTS)))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(paths(obj)))
        if path and draw(st.booleans()) and isinstance(path[-1], str):
            parent = obj
            for key in path[:-1]:
                parent = parent[key]
            del parent[path[-1]]
        else:
            obj = replace_at(obj, path, draw(junk))
    return obj


# --- a panic never aborts the interpreter ------------------------------------------------------


def test_a_rust_panic_is_an_internal_error() -> None:
    with pytest.raises(InternalError, match="deliberate panic") as info:
        kubenat._core._panic_for_tests()
    assert isinstance(info.value, KubenatError)
    # The interpreter is fine afterwards: the binding still works.
    assert Packet.udp(src="10.0.0.1", dst="10.0.0.2", sport=1, dport=2).dport == 2


def test_a_rust_panic_does_not_kill_the_process() -> None:
    code = (
        "import kubenat\n"
        "for _ in range(3):\n"
        "    try:\n"
        "        kubenat._core._panic_for_tests()\n"
        "    except kubenat.InternalError as e:\n"
        "        print('caught', type(e).__name__)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("caught InternalError") == 3


# --- packets ----------------------------------------------------------------------------------

LINKS = st.sampled_from(["auto", "ip", "ethernet"])
SAMPLE_PACKETS = [
    Packet.tcp(src="10.244.1.5", dst="10.96.0.10", sport=40000, dport=80).to_bytes(),
    Packet.udp(src="fd00::1", dst="fd00::2", sport=53, dport=53, payload=b"abc").to_bytes(),
    Packet.sctp(src="10.0.0.1", dst="10.0.0.2", sport=1, dport=2).to_bytes(),
    Packet.icmp(src="10.0.0.1", dst="10.0.0.2", id=1, seq=2).to_bytes(),
    Packet.icmp(src="fd00::1", dst="fd00::2", id=1, seq=2).to_bytes(),
]


@st.composite
def mutated_bytes(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.integers(0, 3))
        if op == 0 and data:
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        elif op == 1:
            del data[draw(st.integers(0, len(data))) :]
        elif op == 2:
            at = draw(st.integers(0, len(data)))
            data[at:at] = draw(st.binary(max_size=8))
        elif data:
            at = draw(st.integers(0, len(data) - 1))
            del data[at : at + draw(st.integers(1, 8))]
    return bytes(data)


def exercise_packet(p: Packet) -> None:
    """Every read-only accessor and derived packet of a packet that parsed."""
    for name in (
        "link",
        "family",
        "src",
        "dst",
        "protocol",
        "proto",
        "sport",
        "dport",
        "ttl",
        "tos",
        "length",
        "ident",
        "flags",
        "tcp_flags",
        "seq",
        "ack",
        "icmp_type",
        "icmp_code",
        "icmp_id",
        "icmp_seq",
        "fragment_offset",
        "more_fragments",
        "dont_fragment",
        "is_fragment",
        "src_mac",
        "dst_mac",
        "vlan",
        "ip_options",
        "payload",
    ):
        getattr(p, name)
    p.checksums_valid()
    repr(p)
    assert Packet.from_bytes(p.to_ip().to_bytes(), link="ip") == p.to_ip()
    only_kubenat_errors(p.with_checksums)
    only_kubenat_errors(p.decrement_ttl)
    only_kubenat_errors(p.with_nat, sport=1, dport=2)


@given(data=st.binary(max_size=200), link=LINKS)
def test_random_bytes_to_packet(data: bytes, link: str) -> None:
    p = only_kubenat_errors(Packet.from_bytes, data, link=link)
    if isinstance(p, Packet):
        exercise_packet(p)


@given(data=mutated_bytes(SAMPLE_PACKETS), link=LINKS)
def test_mutated_packets(data: bytes, link: str) -> None:
    p = only_kubenat_errors(Packet.from_bytes, data, link=link)
    if isinstance(p, Packet):
        exercise_packet(p)


@given(link=st.text(max_size=10))
def test_unknown_link_names_are_refused(link: str) -> None:
    only_kubenat_errors(Packet.from_bytes, SAMPLE_PACKETS[0], link=link)


# --- manifests --------------------------------------------------------------------------------


@given(doc=junk)
def test_junk_objects_to_the_manifest_loader(doc: Any) -> None:
    only_kubenat_errors(k8s.parse_object, doc)
    only_kubenat_errors(k8s.load, [doc] if isinstance(doc, dict) else {"kind": "List", "items": doc})


@given(
    doc=junk,
    kind=st.sampled_from(["Service", "EndpointSlice", "Endpoints", "Node", "Pod", "List", "ServiceList"]),
)
def test_junk_specs_of_every_kind(doc: Any, kind: str) -> None:
    obj = {
        "apiVersion": "v1",
        "kind": kind,
        "metadata": {"name": "x", "namespace": "ns"},
        "spec": doc,
        "items": doc,
        "endpoints": doc,
        "ports": doc,
        "subsets": doc,
        "status": doc,
    }
    only_kubenat_errors(k8s.parse_object, obj)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(obj=mutated_manifest(), case=st.sampled_from(CASES))
def test_mutated_manifests_load_and_build(obj: Any, case: Any) -> None:
    """A real manifest with some values replaced: it loads (and kube-proxy rules build from it
    together with the case's other objects) or a ManifestError names the problem."""
    cluster = only_kubenat_errors(k8s.load, [obj])
    if isinstance(cluster, KubenatError):
        return
    objects = [o for o in case.objects] + [obj]
    only_kubenat_errors(build_text, objects, config=config(case.harness), restore_payload=True)


@given(text=st.text(max_size=300))
def test_random_text_to_the_manifest_loader(text: str) -> None:
    only_kubenat_errors(k8s.load_text, text)


@given(obj=mutated_manifest())
def test_mutated_manifests_as_yaml_and_json_text(obj: Any) -> None:
    import yaml

    try:
        as_json = json.dumps(obj, allow_nan=True)
    except (TypeError, ValueError):
        return
    only_kubenat_errors(k8s.load_text, as_json)
    only_kubenat_errors(k8s.load_text, yaml.safe_dump(obj))


# --- iptables-save text -----------------------------------------------------------------------

DUMPS = [c.expected for c in CASES if c.expected]
RULE_WORDS = st.sampled_from(
    [
        "-A",
        "-I",
        "-N",
        "-X",
        "-F",
        "-P",
        "-j",
        "-g",
        "-p",
        "tcp",
        "udp",
        "-m",
        "--dport",
        "--sport",
        "!",
        "-s",
        "-d",
        "KUBE-SERVICES",
        "KUBE-MARK-MASQ",
        "DNAT",
        "--to-destination",
        "10.0.0.1:80",
        "statistic",
        "--mode",
        "random",
        "--probability",
        "0.5",
        "comment",
        "--comment",
        '"a b"',
        '"',
        "ACCEPT",
        "DROP",
        "RETURN",
        "*nat",
        "*filter",
        ":X",
        "-",
        "[0:0]",
        "COMMIT",
        "\n",
        "1-2",
        "65535",
        "0x4000/0x4000",
        "MARK",
        "--set-xmark",
        "multiport",
        "--dports",
        "80,443",
        "conntrack",
        "--ctstate",
        "NEW",
        "recent",
        "--name",
        "--rcheck",
        "--seconds",
        "10",
    ]
)


@given(text=st.text(max_size=400))
def test_random_text_to_the_parser(text: str) -> None:
    only_kubenat_errors(kubenat.Ruleset.parse, text)
    only_kubenat_errors(kubenat.Ruleset.parse, "*filter\n" + text + "\nCOMMIT\n")


@given(
    words=st.lists(st.lists(RULE_WORDS, max_size=12), max_size=8), table=st.sampled_from(["nat", "filter"])
)
def test_rule_shaped_junk_to_the_parser(words: list[list[str]], table: str) -> None:
    text = f"*{table}\n:X - [0:0]\n" + "\n".join(" ".join(w) for w in words) + "\nCOMMIT\n"
    ruleset = only_kubenat_errors(kubenat.Ruleset.parse, text)
    if isinstance(ruleset, kubenat.Ruleset):
        assert kubenat.Ruleset.parse(ruleset.save(counters=True)) == ruleset


@given(text=mutated_bytes([d.encode() for d in DUMPS]))
def test_mutated_dumps_to_the_parser_and_evaluator(text: bytes) -> None:
    ruleset = only_kubenat_errors(kubenat.Ruleset.parse, text.decode(errors="replace"))
    if not isinstance(ruleset, kubenat.Ruleset):
        return
    nf = only_kubenat_errors(kubenat.Netfilter, ruleset, local_addresses=["192.168.0.2"], stateless=True)
    if isinstance(nf, kubenat.Netfilter):
        for p in SAMPLE_PACKETS[:4]:
            only_kubenat_errors(nf.process, p, seed=1)
            only_kubenat_errors(nf.evaluate, Packet.from_bytes(p), seed=1)


# --- evaluation and decapsulation of hostile bytes --------------------------------------------

NODE = kubenat.Netfilter(
    kubenat.Ruleset.parse(DUMPS[0]), local_addresses=["192.168.0.2"], interfaces={"eth0": ["192.168.0.2/24"]}
)


@given(
    data=st.one_of(st.binary(max_size=120), mutated_bytes(SAMPLE_PACKETS)),
    origin=st.sampled_from(["auto", "local", "eth0", "lo", "nope"]),
    seed=st.integers(0, 2**64 - 1),
)
def test_hostile_packets_through_netfilter(data: bytes, origin: str, seed: int) -> None:
    for link in ("auto", "ip", "ethernet"):
        only_kubenat_errors(NODE.process, data, link=link, from_=origin, seed=seed)
    p = only_kubenat_errors(Packet.from_bytes, data, link="ip")
    if isinstance(p, Packet):
        only_kubenat_errors(NODE.evaluate, p, from_=origin, seed=seed)
        only_kubenat_errors(NODE.outcomes, p, from_=origin)


ENCAPS = [
    kubenat._core.Encapsulator(
        "vxlan", public_ip="192.168.0.2", underlay_mac="02:00:00:00:00:01", vtep_mac="02:00:00:00:00:02"
    ),
    kubenat._core.Encapsulator("udp", public_ip="192.168.0.2", tun_addr="10.244.1.0"),
    kubenat._core.Encapsulator("host-gw", public_ip="192.168.0.2"),
]
FRAMES = [
    ENCAPS[0]
    .__class__(
        "vxlan",
        public_ip="192.168.0.3",
        underlay_mac="02:00:00:00:00:03",
        vtep_mac="02:00:00:00:00:03",
        leases=[("0.0.0.0/0", "192.168.0.2", "02:00:00:00:00:02", "02:00:00:00:00:01")],
    )
    .encap(SAMPLE_PACKETS[0]),
    *SAMPLE_PACKETS,
]


@given(
    data=st.one_of(st.binary(max_size=200), mutated_bytes(FRAMES)),
    link=st.sampled_from(["ethernet", "ip"]),
    which=st.integers(0, len(ENCAPS) - 1),
)
def test_hostile_frames_to_decap(data: bytes, link: str, which: int) -> None:
    enc = ENCAPS[which]
    only_kubenat_errors(enc.decap, data, link=link)
    only_kubenat_errors(enc.encap, data, link=link)
    only_kubenat_errors(enc.net_unreachable, data)
    for r in enc.decap_batch([data, data[:10]], link=link):
        assert isinstance(r, (bytes, KubenatError))
    only_kubenat_errors(kubenat._core.flannel_decrement_ttl, data)
    only_kubenat_errors(kubenat._core.flannel_net_unreachable, data, "10.244.1.0")
