"""One module per ``sscl-daemon`` command (see ``sscl_daemon.cli``)."""
