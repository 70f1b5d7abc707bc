"""Shared pytest setup: hypothesis profiles."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# The first call into a freshly built extension can be slow; never fail on timing.
settings.register_profile("ci", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True)
settings.register_profile("dev", deadline=None, max_examples=50)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
