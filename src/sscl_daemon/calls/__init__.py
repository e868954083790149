"""The pure call core: telephony-session events in, call logs out (no I/O)."""
