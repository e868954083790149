"""The admin console: a small server-rendered web UI on the admin endpoint.

Answers "was this call logged, where, and if not why?", "what is stuck?" and
"would a call with this number be logged?" in a browser, with the CLI's own
operations (``retry-dead``, ``blocklist check``). :class:`.web.WebConsole`
holds the pages, :mod:`.security` the sessions and CSRF tokens,
:mod:`.charts` the SVG charts, :mod:`.memory` what the process remembers
(recent skipped calls, the last reload); the SQL is in
:mod:`sscl_daemon.store.views`. Templates and static files ship in the
package: no build step, no CDN.
"""
