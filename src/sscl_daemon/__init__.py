"""sscl-daemon: server-side call logging for RingCentral organisations."""

__version__ = "0.1.0"
