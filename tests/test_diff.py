"""kubenat diff: spelling differences vanish, real differences are named by table and chain."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

import kubenat
from kubenat.cli import main
from kubenat.diff import diff, render

RESTORE_FORM = """*nat
:PREROUTING ACCEPT [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-SVC-X - [0:0]
-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000
-A KUBE-SVC-X -m statistic --mode random --probability 0.5000000000 -j KUBE-MARK-MASQ
-A PREROUTING -p tcp -d 10.96.0.10 --dport 80 -j KUBE-SVC-X
COMMIT
"""

SAVE_FORM = """*nat
:PREROUTING ACCEPT [3:180]
:KUBE-MARK-MASQ - [0:0]
:KUBE-SVC-X - [0:0]
-A PREROUTING -d 10.96.0.10/32 -p tcp -m tcp --dport 80 -j KUBE-SVC-X
-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000
-A KUBE-SVC-X -m statistic --mode random --probability 0.50000000000 -j KUBE-MARK-MASQ
COMMIT
"""


def test_spellings_of_the_same_rules_do_not_differ() -> None:
    assert diff(kubenat.Ruleset.parse(RESTORE_FORM), kubenat.Ruleset.parse(SAVE_FORM)) == []


def test_real_differences_are_reported() -> None:
    changed = SAVE_FORM.replace("--dport 80", "--dport 8080").replace(
        ":KUBE-SVC-X - [0:0]\n", ":KUBE-SVC-X - [0:0]\n:EXTRA - [0:0]\n"
    )
    diffs = diff(kubenat.Ruleset.parse(RESTORE_FORM), kubenat.Ruleset.parse(changed))
    assert [(d.chain, d.status) for d in diffs] == [("PREROUTING", "changed"), ("EXTRA", "only-second")]
    text = render(diffs, "built", "node")
    assert "-A PREROUTING -d 10.96.0.10/32 -p tcp -m tcp --dport 80 -j KUBE-SVC-X" in text
    assert "*nat EXTRA: only in node" in text


def test_cli_exit_codes(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_text(RESTORE_FORM)
    b.write_text(SAVE_FORM)
    same = CliRunner().invoke(main, ["diff", str(a), str(b)])
    assert same.exit_code == 0 and "same rules" in same.output
    b.write_text(SAVE_FORM.replace("ACCEPT [3:180]", "DROP [3:180]"))
    differ = CliRunner().invoke(main, ["diff", str(a), str(b)])
    assert differ.exit_code == 1
    assert "policy ACCEPT → DROP" in differ.output
