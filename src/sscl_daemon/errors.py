"""The package's one error base class: every error sscl-daemon raises on purpose is an SsclError.

Where it sits: at the top of the package, importing nothing, so any module can
subclass it. Catch :class:`SsclError` to tell the daemon's own typed failures
(a bad config, a store that refuses, a RingCentral answer that cannot be read)
from bugs. Errors that callers have always caught as ``ValueError`` (or
``RuntimeError``) keep that as their second base, so no ``except`` changes.
"""

from __future__ import annotations


class SsclError(Exception):
    """Base of every exception class sscl-daemon defines."""
