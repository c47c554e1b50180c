"""The one exception type for mistakes a user can fix.

The CLI prints an ``EdgeftError`` as a single ``error: ...`` line and exits non-zero; anything
else is a bug and keeps its traceback.
"""


class EdgeftError(Exception):
    """A user-facing error: bad input, a missing package, an unknown name."""


class BundleError(EdgeftError):
    """A bundle that is missing, half-written, tampered with or of an unknown schema."""


class DatasetError(EdgeftError):
    """A dataset that cannot be used as given (empty, single-class, unknown labels...)."""
