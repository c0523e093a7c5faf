"""Attribution probes; importing the package registers them."""
