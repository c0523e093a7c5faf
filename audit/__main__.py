"""``python -m audit`` is the ``rai-audit`` command."""

from audit.cli import main

main()
