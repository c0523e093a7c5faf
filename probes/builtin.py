"""Importing this module registers every built-in probe (each family package imports its probe modules)."""

import probes.attribution
import probes.bias
import probes.fairness
import probes.privacy  # noqa: F401
