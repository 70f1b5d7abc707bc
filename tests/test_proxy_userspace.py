"""kube-proxy userspace mode (1.1-1.2): portal rules, proxy ports, the proxy process model, CLI."""

from __future__ import annotations

from collections import Counter

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

import kubenat
from kubenat import examples, k8s
from kubenat.cli import main
from kubenat.proxy import build_text
from kubenat.proxy.userspace import portals
from kubenat.proxy.userspace_proxy import UserspaceProxy

WALK = examples.walkthrough()
NODE_IP = examples.WALKTHROUGH_NODE_IP
PORTS = {"my-first-nginx": 43321, "my-second-nginx": 50563}
ISSUE_LISTING = (
    "REDIRECT   tcp  --  anywhere             192.168.235.209      "
    "/* default/my-first-nginx: */ tcp dpt:http redir ports 43321",
    "DNAT       tcp  --  anywhere             anywhere             "
    "/* default/my-second-nginx: */ tcp dpt:31150 to:10.96.219.141:50563",
)


def userspace_text(**kwargs: object) -> str:
    return build_text(WALK, "userspace", node_ips=(NODE_IP,), proxy_ports=PORTS, **kwargs)  # type: ignore[arg-type]


def test_rules_as_iptables_save_shows_them() -> None:
    text = userspace_text()
    lines = text.splitlines()
    assert (
        "-A KUBE-PORTALS-CONTAINER -d 192.168.235.209/32 -p tcp -m comment --comment "
        '"default/my-first-nginx:" -m tcp --dport 80 -j REDIRECT --to-ports 43321'
    ) in lines
    assert (
        "-A KUBE-PORTALS-HOST -d 192.168.235.209/32 -p tcp -m comment --comment "
        '"default/my-first-nginx:" -m tcp --dport 80 -j DNAT --to-destination 10.96.219.141:43321'
    ) in lines
    assert (
        '-A KUBE-NODEPORT-HOST -p tcp -m comment --comment "default/my-second-nginx:" -m tcp --dport 31150 '
        "-j DNAT --to-destination 10.96.219.141:50563"
    ) in lines
    assert (
        '-A KUBE-NODEPORT-CONTAINER -p tcp -m comment --comment "default/my-second-nginx:" '
        "-m tcp --dport 31150 -j REDIRECT --to-ports 50563"
    ) in lines
    hooks = [line for line in lines if line.startswith("-A PREROUTING") or line.startswith("-A OUTPUT")]
    assert hooks == [
        "-A PREROUTING -m comment --comment "
        '"handle ClusterIPs; NOTE: this must be before the NodePort rules" -j KUBE-PORTALS-CONTAINER',
        "-A PREROUTING -m addrtype --dst-type LOCAL -m comment --comment "
        '"handle service NodePorts; NOTE: this must be the last rule in the chain" '
        "-j KUBE-NODEPORT-CONTAINER",
        "-A OUTPUT -m comment --comment "
        '"handle ClusterIPs; NOTE: this must be before the NodePort rules" -j KUBE-PORTALS-HOST',
        "-A OUTPUT -m addrtype --dst-type LOCAL -m comment --comment "
        '"handle service NodePorts; NOTE: this must be the last rule in the chain" -j KUBE-NODEPORT-HOST',
    ]


def test_specific_bind_address_uses_dnat() -> None:
    text = userspace_text(bind_address="10.96.219.141")
    assert "REDIRECT" not in text
    assert "-j DNAT --to-destination 10.96.219.141:43321" in text


def test_external_and_lb_ips_get_portals() -> None:
    svc = {
        "kind": "Service",
        "metadata": {"name": "s"},
        "spec": {
            "type": "LoadBalancer",
            "clusterIP": "10.0.0.1",
            "externalIPs": ["1.1.1.1"],
            "ports": [{"port": 53, "protocol": "UDP", "nodePort": 30053}],
        },
        "status": {"loadBalancer": {"ingress": [{"ip": "2.2.2.2"}, {"hostname": "lb.example"}]}},
    }
    text = build_text([svc], "userspace", node_ips=("10.1.1.1",), proxy_ports={"s": 40000})
    for ip in ("10.0.0.1", "1.1.1.1", "2.2.2.2"):
        assert (
            f'-A KUBE-PORTALS-CONTAINER -d {ip}/32 -p udp -m comment --comment "default/s:" '
            "-m udp --dport 53 -j REDIRECT --to-ports 40000" in text
        )
    assert text.count("-A KUBE-NODEPORT-") == 2


def test_seeded_ports_are_deterministic_and_distinct() -> None:
    a = portals(WALK, seed=7)
    b = portals(WALK, seed=7)
    assert [p.proxy_port for p in a] == [p.proxy_port for p in b]
    assert len({p.proxy_port for p in a}) == len(a)
    assert all(32768 <= p.proxy_port <= 60999 for p in a)
    ranged = portals(WALK, seed=1, port_range="30000-30001")
    assert sorted(p.proxy_port for p in ranged) == [30000, 30001]
    with pytest.raises(kubenat.InvalidArgument, match="no free proxy port"):
        portals(WALK, port_range="30000-30000")


@given(st.integers(0, 2**32))
def test_any_seed_gives_distinct_ports(seed: int) -> None:
    ports = [p.proxy_port for p in portals(WALK, seed=seed)]
    assert len(set(ports)) == len(ports)


def test_unknown_proxy_port_service_is_an_error() -> None:
    with pytest.raises(kubenat.InvalidArgument, match="unknown services: nope"):
        build_text(WALK, "userspace", node_ips=(NODE_IP,), proxy_ports={"nope": 1})


def test_needs_a_node_ip() -> None:
    with pytest.raises(kubenat.InvalidArgument, match="node IP"):
        build_text(WALK, "userspace")


def test_proxy_round_robin_and_affinity() -> None:
    proxy = UserspaceProxy(WALK, NODE_IP, proxy_ports=PORTS)
    port = proxy.port_of("default/my-first-nginx")
    assert port == 43321
    picks = [proxy.connect(port, "192.168.20.3").endpoint for _ in range(4)]
    assert picks == ["192.168.20.2:80", "192.168.55.5:80"] * 2
    conn = proxy.connect(port, "10.0.0.9")
    assert conn.source_ip == NODE_IP and conn.service == "default/my-first-nginx:"

    sticky_objs = [*WALK.objects]
    svc = WALK.service("default", "my-first-nginx")
    assert svc is not None
    sticky_objs[sticky_objs.index(svc)] = k8s.Service(**{**svc.__dict__, "session_affinity": "ClientIP"})
    sticky = UserspaceProxy(k8s.Cluster(tuple(sticky_objs)), NODE_IP, proxy_ports=PORTS, sticky_seconds=60)
    first = sticky.connect(43321, "10.0.0.1", now=0)
    assert [sticky.connect(43321, "10.0.0.1", now=t).endpoint for t in (10, 50, 100)] == [first.endpoint] * 3
    assert sticky.connect(43321, "10.0.0.2", now=0).endpoint != first.endpoint
    assert sticky.connect(43321, "10.0.0.1", now=200).sticky is False  # expired


def test_proxy_spreads_evenly() -> None:
    proxy = UserspaceProxy(WALK, NODE_IP, proxy_ports=PORTS)
    counts = Counter(proxy.connect(50563, f"10.0.0.{i}").endpoint for i in range(100))
    assert counts == {"192.168.20.2:80": 50, "192.168.55.5:80": 50}


def test_proxy_errors() -> None:
    proxy = UserspaceProxy(WALK, NODE_IP, proxy_ports=PORTS)
    with pytest.raises(kubenat.InvalidArgument, match="nothing listens on proxy port 1"):
        proxy.connect(1, "10.0.0.1")
    empty = k8s.load(
        {
            "kind": "Service",
            "metadata": {"name": "e"},
            "spec": {"clusterIP": "10.0.0.5", "ports": [{"port": 80}]},
        }
    )
    with pytest.raises(kubenat.InvalidArgument, match="has no endpoints"):
        UserspaceProxy(empty, NODE_IP, proxy_ports={"e": 40000}).connect(40000, "10.0.0.1")


def test_cli_userspace(tmp_path: object) -> None:
    runner = CliRunner()
    args = ["rules", str(examples.WALKTHROUGH), "--mode", "userspace", "--node-ip", NODE_IP]
    args += ["--proxy-port", "default/my-first-nginx:=43321", "--proxy-port", "my-second-nginx=50563"]
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    assert result.output == userspace_text()
    listing = runner.invoke(main, [*args, "--listing"])
    if hasattr(kubenat, "Ruleset") and hasattr(kubenat.Ruleset, "listing"):
        assert listing.exit_code == 0, listing.output
        for line in ISSUE_LISTING:
            assert line in listing.output.splitlines()
    else:
        assert listing.exit_code != 0 and "needs kubenat.Ruleset" in listing.output


def test_cli_bad_proxy_port() -> None:
    result = CliRunner().invoke(
        main, ["rules", "--example", "walkthrough", "--mode", "userspace", "--proxy-port", "x"]
    )
    assert result.exit_code == 2 and "is not SERVICE=PORT" in result.output


def test_outputs_parse() -> None:
    if not hasattr(kubenat, "Ruleset"):
        return
    ruleset = kubenat.Ruleset.parse(userspace_text())
    assert ruleset.rules("nat", "KUBE-PORTALS-CONTAINER")[0].text.startswith(
        "-A KUBE-PORTALS-CONTAINER -d 192.168.235.209/32"
    )


def test_route_follows_portals_to_pods() -> None:
    proxy = UserspaceProxy(WALK, NODE_IP, proxy_ports=PORTS)
    conn = proxy.route("192.168.20.3", "192.168.235.209", 80)
    assert (
        conn is not None
        and conn.proxy_port == 43321
        and conn.endpoint in ("192.168.20.2:80", "192.168.55.5:80")
    )
    node_port = proxy.route("203.0.113.9", NODE_IP, 31150)
    assert node_port is not None and node_port.proxy_port == 50563
    assert proxy.route("192.168.20.3", "192.168.235.209", 81) is None
    assert proxy.route("192.168.20.3", "192.168.235.209", 80, "UDP") is None
