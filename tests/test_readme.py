"""Every recipe in the README runs as written, in an empty directory."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
FENCE = re.compile(r"^```(sh|python)\n(.*?)^```", re.M | re.S)


def recipes() -> list[tuple[str, list[tuple[str, str]]]]:
    """(title, [(language, code), ...]) for each ``###`` recipe of the ``## Recipes`` section."""
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Recipes\n", 1)[1].split("\n## ", 1)[0]
    out = []
    for chunk in section.split("\n### ")[1:]:
        title, _, body = chunk.partition("\n")
        out.append((title.strip(), [(m.group(1), m.group(2)) for m in FENCE.finditer(body)]))
    return out


RECIPES = recipes()


def test_the_readme_has_the_recipes_the_project_promises() -> None:
    titles = " | ".join(title for title, _ in RECIPES)
    for word in ("four network models", "Trace", "diff", "flannel frames", "Fuzz", "Benchmark", "kernel"):
        assert word in titles
    assert all(blocks for _, blocks in RECIPES)


def _shim(tmp: Path) -> dict[str, str]:
    """An environment whose ``kubenat`` is this interpreter's kubenat (the checkout under test)."""
    bindir = tmp / ".bin"
    bindir.mkdir()
    shim = bindir / "kubenat"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m kubenat "$@"\n')
    shim.chmod(0o755)
    env = dict(os.environ)
    env["PATH"] = f"{bindir}{os.pathsep}{env.get('PATH', '')}"
    # The recipe runs elsewhere: a relative PYTHONPATH (a checkout under test) must stay valid.
    if env.get("PYTHONPATH"):
        env["PYTHONPATH"] = os.pathsep.join(
            str(Path(p).resolve()) for p in env["PYTHONPATH"].split(os.pathsep) if p
        )
    return env


@pytest.mark.parametrize(("title", "blocks"), RECIPES, ids=[t for t, _ in RECIPES])
def test_recipe_runs(
    title: str, blocks: list[tuple[str, str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = _shim(tmp_path)
    monkeypatch.chdir(tmp_path)
    needs_root = "(root)" in title
    for language, code in blocks:
        if language == "python":
            exec(compile(code, f"README: {title}", "exec"), {"__name__": "readme_recipe"})
            continue
        proc = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", code],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if needs_root and os.geteuid() != 0:
            # Without root the command must refuse clearly instead of half-running.
            assert proc.returncode != 0
            assert "root" in (proc.stdout + proc.stderr)
            return
        assert proc.returncode == 0, (
            f"{title}: exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
