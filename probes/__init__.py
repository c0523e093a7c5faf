"""rai-audit probes: bias, fairness, privacy leakage and attribution, behind one contract (probes.base)."""
