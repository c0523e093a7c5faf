"""Named errors of the data catalog and loaders.

Every message is one line that says what is wrong and what is expected, so the CLI can print it as is
(exit code 2) and a user can act on it without a traceback.
"""

from __future__ import annotations

from audit.errors import InputError


class DatasetError(InputError):
    """Base class: a dataset could not be provided as asked."""


class DatasetNotFoundError(DatasetError):
    """No source resolved a dataset name or path; the message lists every place that was tried."""


class EmptyDatasetError(DatasetError):
    """The file exists but holds no rows."""


class DatasetEncodingError(DatasetError):
    """The file is not valid UTF-8 text."""


class DatasetFormatError(DatasetError):
    """The file's format is unknown or its content does not parse as that format."""


class MissingColumnsError(DatasetError):
    """Columns the caller (or the named dataset) requires are absent."""
