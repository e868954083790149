"""A SIGHUP's reading and reporting (``daemon/app.py``'s ``reload`` -> here).

The file is read again; one that does not load is rejected with its problems (the running
settings stay in force). A loaded one is compared with the running settings
(:func:`~sscl_daemon.daemon.reload.plan_reload`, pure) and the daemon applies the plan to
its accounts; what was applied and what needs a restart go to the log, the
``config_reloads`` metric and the console's last-reload line (:data:`LAST_RELOAD`).
"""

from __future__ import annotations

from pathlib import Path

from sscl_daemon import metrics
from sscl_daemon.config import ConfigError, Settings, load_config
from sscl_daemon.console.memory import LAST_RELOAD
from sscl_daemon.daemon.reload import ReloadPlan, plan_reload
from sscl_daemon.logging import get_logger

log = get_logger(__name__)


def read_plan(config_path: Path | None, running: Settings) -> ReloadPlan | None:
    """The plan of reloading ``config_path`` over ``running``; None when there is none."""
    if config_path is None:
        log.warning(
            "config.reload.no_file",
            hint="the daemon was not started from a file: restart it to change settings",
        )
        return None
    try:
        new = load_config(config_path)
    except ConfigError as exc:
        metrics.CONFIG_RELOADS.labels(result="rejected").inc()
        LAST_RELOAD.record(False, [str(issue) for issue in exc.issues])
        log.error(
            "config.reload.rejected",
            file=str(config_path),
            problems=[str(issue) for issue in exc.issues],
            hint="the running configuration stays in force; fix the file and reload again",
        )
        return None
    return plan_reload(running, new)


def report_applied(plan: ReloadPlan) -> None:
    """Say what an applied plan changed and what waits for a restart."""
    metrics.CONFIG_RELOADS.labels(result="applied").inc()
    LAST_RELOAD.record(
        True,
        [f"applied: {key}" for key in plan.applied]
        + [f"needs a restart: {key}" for key in plan.needs_restart],
    )
    log.info(
        "config.reload.applied",
        applied=list(plan.applied) or "nothing changed",
        needs_restart=list(plan.needs_restart),
    )
    if plan.needs_restart:
        log.warning(
            "config.reload.needs_restart",
            keys=list(plan.needs_restart),
            hint="these changes take effect only after a restart",
        )
