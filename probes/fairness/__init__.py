"""Fairness probes; importing the package registers them."""

from probes.fairness import group_metrics, mitigation, subgroup_auc  # noqa: F401
