"""Importing this module registers every built-in probe (each family package imports its probe modules)."""

import probes.attribution  # noqa: F401
import probes.bias  # noqa: F401
import probes.fairness  # noqa: F401
import probes.privacy  # noqa: F401
