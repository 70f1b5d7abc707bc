"""hostPort rules: CNI portmap and docker styles."""

from __future__ import annotations

import hashlib
import re

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

import kubenat
from kubenat import examples, hostport
from kubenat.cli import main

WALK = examples.walkthrough()


def test_cni_chain_name_is_portmap_hash() -> None:
    name = hostport.dn_chain("cbr0", "abc")
    assert name == "CNI-DN-" + hashlib.sha512(b"cbr0abc").hexdigest()[:21]
    assert len(name) == 28


def test_cni_rules_for_nginxpod() -> None:
    text = hostport.build_text(
        WALK, "cni", node_name="kube-node-1", container_ids={"default/nginxpod": "abc"}
    )
    chain = hostport.dn_chain("cbr0", "abc")
    lines = text.splitlines()
    assert "-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT" in lines
    assert "-A OUTPUT -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT" in lines
    assert (
        '-A POSTROUTING -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ' in lines
    )
    assert (
        '-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \\"cbr0\\" id: \\"abc\\"" '
        f"-m multiport --dports 80,8800 -j {chain}"
    ) in lines
    assert (
        '-A CNI-HOSTPORT-SETMARK -m comment --comment "CNI portfwd masquerade mark" '
        "-j MARK --set-xmark 0x2000/0x2000" in lines
    )
    assert "-A CNI-HOSTPORT-MASQ -m mark --mark 0x2000/0x2000 -j MASQUERADE" in lines
    assert [line for line in lines if line.startswith(f"-A {chain}")] == [
        f"-A {chain} -s 192.168.20.3/32 -p tcp -m tcp --dport 80 -j CNI-HOSTPORT-SETMARK",
        f"-A {chain} -s 127.0.0.1/32 -p tcp -m tcp --dport 80 -j CNI-HOSTPORT-SETMARK",
        f"-A {chain} -p tcp -m tcp --dport 80 -j DNAT --to-destination 192.168.20.3:80",
        f"-A {chain} -s 192.168.20.3/32 -p tcp -m tcp --dport 8800 -j CNI-HOSTPORT-SETMARK",
        f"-A {chain} -s 127.0.0.1/32 -p tcp -m tcp --dport 8800 -j CNI-HOSTPORT-SETMARK",
        f"-A {chain} -p tcp -m tcp --dport 8800 -j DNAT --to-destination 192.168.20.3:8800",
    ]


def test_docker_rules_for_nginxpod() -> None:
    text = hostport.build_text(WALK, "docker", node_name="kube-node-1")
    lines = text.splitlines()
    assert "-A POSTROUTING -s 192.168.20.0/24 ! -o docker0 -j MASQUERADE" in lines
    assert "-A DOCKER ! -i docker0 -p tcp -m tcp --dport 80 -j DNAT --to-destination 192.168.20.3:80" in lines
    assert (
        "-A DOCKER ! -i docker0 -p tcp -m tcp --dport 8800 -j DNAT --to-destination 192.168.20.3:8800"
        in lines
    )
    assert "-A DOCKER -d 192.168.20.3/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 80 -j ACCEPT" in lines
    assert "-A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER" in lines


def test_host_ip_udp_many_ports_and_nodes() -> None:
    ports = [{"containerPort": 1000 + i, "hostPort": 2000 + i, "protocol": "UDP"} for i in range(16)]
    ports.append({"containerPort": 80, "hostPort": 8080, "hostIP": "10.0.0.1"})
    pod = {
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {"nodeName": "n2", "containers": [{"name": "c", "ports": ports}]},
        "status": {"podIP": "10.244.0.9"},
    }
    text = hostport.build_text([pod])
    assert len(re.findall(r"--dports \S+ -j", text)) == 3  # tcp, and udp split at 15 ports
    assert "-A CNI-DN-" in text and "-d 10.0.0.1/32 -p tcp -m tcp --dport 8080 -j DNAT" in text
    assert "--to-destination" in hostport.build_text([pod], node_name="n2")
    assert "CNI-DN-" not in hostport.build_text([pod], node_name="other")


def test_host_network_pods_are_not_mapped_and_pod_ip_is_required() -> None:
    host_net = {
        "kind": "Pod",
        "metadata": {"name": "h"},
        "spec": {
            "hostNetwork": True,
            "containers": [{"name": "c", "ports": [{"containerPort": 80, "hostPort": 80}]}],
        },
    }
    assert "CNI-DN-" not in hostport.build_text([host_net])
    no_ip = {
        "kind": "Pod",
        "metadata": {"name": "x"},
        "spec": {"containers": [{"name": "c", "ports": [{"containerPort": 80, "hostPort": 80}]}]},
    }
    with pytest.raises(kubenat.InvalidArgument, match=r"Pod default/x: status.podIP: required"):
        hostport.build_text([no_ip])


def test_cli_hostports() -> None:
    result = CliRunner().invoke(
        main, ["rules", "--example", "walkthrough", "--hostports", "cni", "--node-name", "kube-node-1"]
    )
    assert result.exit_code == 0, result.output
    assert "CNI-HOSTPORT-DNAT" in result.output


_port = st.integers(1, 65535)


@given(
    st.lists(
        st.tuples(_port, _port, st.sampled_from(["TCP", "UDP", "SCTP"])),
        min_size=1,
        max_size=20,
        unique_by=lambda t: (t[1], t[2]),
    ),
    st.sampled_from(["cni", "docker"]),
    st.text(alphabet="abcdef0123456789", min_size=1, max_size=64),
)
def test_random_pods_give_parsable_rules(ports: list[tuple[int, int, str]], style: str, cid: str) -> None:
    pod = {
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "ns"},
        "spec": {
            "containers": [
                {
                    "name": "c",
                    "ports": [{"containerPort": c, "hostPort": h, "protocol": p} for c, h, p in ports],
                }
            ]
        },
        "status": {"podIP": "10.244.0.9"},
    }
    text = hostport.build_text([pod], style, container_ids={"ns/p": cid})
    dnats = re.findall(r"-j DNAT --to-destination 10\.244\.0\.9:(\d+)", text)
    assert sorted(int(d) for d in dnats) == sorted(c for c, _, _ in ports)
    if style == "cni":
        chains = set(re.findall(r"CNI-DN-[0-9a-f]+", text))
        assert chains == {hostport.dn_chain("cbr0", cid)}
        listed = ",".join(re.findall(r"--dports (\S+)", text)).split(",")
        assert sorted(int(p) for p in listed) == sorted(h for _, h, _ in ports)
    if hasattr(kubenat, "Ruleset"):
        ruleset = kubenat.Ruleset.parse(text)
        assert "nat" in ruleset.tables
