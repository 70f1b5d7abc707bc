"""``kubenat verify`` end to end (kernel side; kubenat's side once the evaluator is built in)."""

from __future__ import annotations

from click.testing import CliRunner

from kubenat.cli import main

RULES = """\
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -d 10.96.0.10/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.244.2.7:8080
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -d 10.96.0.22/32 -j DROP
COMMIT
"""


def test_verify_with_packet_file(tmp_path) -> None:
    rules = tmp_path / "rules"
    rules.write_text(RULES)
    packets = tmp_path / "packets"
    packets.write_text("tcp 10.0.0.5:40000 10.96.0.10:80\nudp 10.0.0.5:1 10.96.0.22:53\n")
    result = CliRunner().invoke(main, ["verify", str(rules), "--packets", str(packets), "--show-all"])
    assert result.exit_code == 0, result.output
    assert "10.244.2.7:8080" in result.output and "DROP" in result.output


def test_verify_random_and_bad_rules(tmp_path) -> None:
    rules = tmp_path / "rules"
    rules.write_text(RULES)
    result = CliRunner().invoke(main, ["verify", str(rules), "--random", "20", "--show-all"])
    assert result.exit_code == 0, result.output
    rules.write_text("*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -j DROP\nCOMMIT\n")
    result = CliRunner().invoke(main, ["verify", str(rules), "--random", "2"])
    assert result.exit_code == 1 and "refused" in result.output
