"""Privacy probes; importing the package registers them: membership inference and canary exposure."""

from probes.privacy import exposure, membership  # noqa: F401
