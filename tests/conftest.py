"""Shared pytest setup: hypothesis profiles.

``ci`` (the default) draws the same examples on every run, so that a red run is reproducible and
never a matter of luck; ``explore`` draws fresh random examples (and more of them) to look for
new failures: ``HYPOTHESIS_PROFILE=explore python -m pytest``. ``dev`` is a quick pass.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# The first call into a freshly built extension can be slow; never fail on timing.
_COMMON = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True)
settings.register_profile("ci", derandomize=True, **_COMMON)  # type: ignore[arg-type]
settings.register_profile("explore", max_examples=1000, **_COMMON)  # type: ignore[arg-type]
settings.register_profile("dev", deadline=None, max_examples=50)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
