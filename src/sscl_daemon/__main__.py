"""Allows ``python -m sscl_daemon``."""

from sscl_daemon.cli import main

raise SystemExit(main())
