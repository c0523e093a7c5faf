"""Bias probes; importing the package registers them."""
