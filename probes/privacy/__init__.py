"""Privacy probes; importing the package registers them."""
