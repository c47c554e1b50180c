"""The one exception type for mistakes a user can fix, and how a message quotes their input.

The CLI prints an ``EdgeftError`` as a single ``error: ...`` line and exits non-zero; anything
else is a bug and keeps its traceback.
"""

SHOWN = 80  # characters of a refused value that a message echoes


class EdgeftError(Exception):
    """A user-facing error: bad input, a missing package, an unknown name."""


class BundleError(EdgeftError):
    """A bundle that is missing, half-written, tampered with or of an unknown schema."""


class DatasetError(EdgeftError):
    """A dataset that cannot be used as given (empty, single-class, unknown labels...)."""


def shown(value: object) -> str:
    """``value`` quoted and escaped onto one line, cut to ``SHOWN`` characters: a name, label or
    request field chosen by an attacker must not flood a message or forge a second line."""
    text = repr(value)
    return text if len(text) <= SHOWN else text[: SHOWN - 3] + "..."
