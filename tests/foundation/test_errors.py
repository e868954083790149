"""Every exception class the package defines has the package's base, SsclError.

Imports every module of ``sscl_daemon`` but the simulator (its errors are the
answers of the RingCentral and CRM stand-ins, not the daemon's) and checks each
exception class defined there, so a new one without the base fails here naming it.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import sscl_daemon
from sscl_daemon.errors import SsclError


def defined_exceptions() -> list[str]:
    found = []
    for module_info in pkgutil.walk_packages(sscl_daemon.__path__, "sscl_daemon."):
        if module_info.name == "sscl_daemon.__main__":
            continue  # runs the command line when imported
        if module_info.name.startswith("sscl_daemon.simulator"):
            continue
        module = importlib.import_module(module_info.name)
        for name, value in vars(module).items():
            if (
                inspect.isclass(value)
                and issubclass(value, BaseException)
                and value.__module__ == module.__name__
                and not issubclass(value, SsclError)
            ):
                found.append(f"{module.__name__}.{name}")
    return sorted(found)


def test_every_exception_of_the_package_is_an_sscl_error() -> None:
    missing = defined_exceptions()
    assert not missing, f"not subclasses of sscl_daemon.errors.SsclError: {missing}"
