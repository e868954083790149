"""Exit statuses of every ``sscl-daemon`` command, and which the systemd unit treats as final.

Where it sits: the commands (``commands/*.py``) and the daemon (``daemon/app.py``) return
these; ``systemd/sscl-daemon.service`` lists :data:`FINAL` in ``RestartPreventExitStatus=``
and the README's Troubleshooting section lists each status (a test compares the three).
"""

from __future__ import annotations

# Success.
EXIT_OK = 0
# A failure a restart may cure (a lost connection, an unexpected error): the unit restarts.
EXIT_FAILURE = 1
# A problem only the admin can fix (an invalid or unreadable configuration, credentials
# refused, a state directory the service cannot write, a database login refused, the
# admin port taken): the unit does not restart, the message says what to fix.
EXIT_CONFIG = 2

# The statuses systemd must not restart on (the unit's RestartPreventExitStatus=).
FINAL = (EXIT_CONFIG,)
