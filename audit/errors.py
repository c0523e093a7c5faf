"""The base class of every error that means bad input rather than a bug.

A config, a policy, a results.json, a dataset, a model folder, an output path or a probe setting that cannot be
used raises a subclass of ``InputError`` whose message is one line saying what is wrong and what is expected.
The CLI catches this one class: it prints the message and exits with code 2. Errors that reveal a bug (e.g.
``probes.base.UndeclaredMetricError``) do not derive from it. Standard library only, so that importing it
loads neither torch nor transformers.
"""

from __future__ import annotations


class InputError(ValueError):
    """Bad input a user can fix: the message names it and says what is expected."""
