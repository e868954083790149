"""All the store's SQL, as named statements: one module per kind of state, one namespace.

Where it sits: the store's modules (:mod:`..outbox`, :mod:`..checkpoints`, :mod:`..leases`,
:mod:`..instances`, :mod:`..enrichments`, :mod:`..views`, :mod:`..migrate`, ...) run these
statements and hold no SQL of their own; they read them as ``sql.NAME`` after
``from sscl_daemon.store import sql``. The modules: :mod:`.outbox`, :mod:`.enrichments`,
:mod:`.state` (checkpoints, snapshots, directory, credentials, dead letters), :mod:`.fleet`
(leases and instances), :mod:`.views` (``status`` and the console) and :mod:`.schema`
(databases and migrations). A name is defined in exactly one of them.
"""

# ruff: noqa: F403

from sscl_daemon.store.sql.enrichments import *
from sscl_daemon.store.sql.fleet import *
from sscl_daemon.store.sql.outbox import *
from sscl_daemon.store.sql.schema import *
from sscl_daemon.store.sql.state import *
from sscl_daemon.store.sql.views import *
