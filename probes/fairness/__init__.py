"""Fairness probes; importing the package registers them."""
