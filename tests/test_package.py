"""The package imports, exposes its version and its exception hierarchy."""

from __future__ import annotations

import kubenat


def test_version_matches_native_module() -> None:
    assert kubenat.__version__ == kubenat._core.__version__
    assert kubenat.__version__.count(".") == 2


def test_errors_are_value_errors_where_input_is_bad() -> None:
    for cls in (kubenat.PacketError, kubenat.ParseError, kubenat.ManifestError):
        assert issubclass(cls, kubenat.KubenatError)
        assert issubclass(cls, ValueError)
    err = kubenat.ParseError("line 3: bad", line=3, column=1, text="-A X", reason="bad")
    assert err.line == 3
    assert str(err) == "line 3: bad"


def test_rust_panic_becomes_internal_error() -> None:
    import pytest

    with pytest.raises(kubenat.InternalError, match="deliberate panic"):
        kubenat._core._panic_for_tests()
