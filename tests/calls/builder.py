"""Build realistic telephony-session notifications for the call-core tests.

Shapes follow the RingCentral developer guide (telephony session
notifications) and the real captures summarised in rc-protocol.md B2-B6:
one party per notification, ``sequence`` starting at 2, concrete ``event``
paths (extension path for extension parties, account path for PSTN ones),
``[header, envelope]`` WebSocket frames.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sscl_daemon.calls.directory import Directory
from sscl_daemon.calls.model import Extension, ExtensionType

ACCOUNT = "400131234008"
T0 = datetime(2026, 3, 2, 15, 0, 0, tzinfo=UTC)
CUSTOMER = "+14155550142"
MAIN_NUMBER = "+16505550100"
ALICE_DID = "+16505550101"

DIRECTORY = Directory(
    [
        Extension(id="1001", extension_number="101", name="Alice Agent", type=ExtensionType.USER,
                  email="alice@example.com", department="Sales"),
        Extension(id="1002", extension_number="102", name="Bob Agent", type=ExtensionType.USER,
                  email="bob@example.com", department="Sales"),
        Extension(id="1003", extension_number="103", name="Carol Support", type=ExtensionType.USER,
                  email="carol@example.com", department="Support"),
        Extension(id="2000", extension_number="2000", name="Main IVR", type=ExtensionType.IVR_MENU),
        Extension(id="3000", extension_number="3000", name="Sales Queue",
                  type=ExtensionType.DEPARTMENT),
        Extension(id="8001", extension_number="8001", name="Park 1",
                  type=ExtensionType.PARK_LOCATION),
    ]
)  # fmt: skip


def ext(ext_id: str, number: str, name: str | None = None) -> dict[str, Any]:
    info: dict[str, Any] = {"phoneNumber": number, "extensionId": ext_id}
    if name:
        info["name"] = name
    return info


def pstn(number: str, name: str | None = None) -> dict[str, Any]:
    info: dict[str, Any] = {"phoneNumber": number}
    if name:
        info["name"] = name
    return info


@dataclass
class Session:
    """One telephony session; :meth:`ev` appends one notification (one party)."""

    tsid: str
    start: datetime = T0
    session_id: str = "4119612004"
    seq: int = 1
    parties: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    shared: list[int] = field(default_factory=lambda: [0])  # uuid counter shared across sessions

    def party(
        self,
        pid: str,
        *,
        direction: str,
        from_: dict[str, Any],
        to: dict[str, Any],
        extension_id: str | None = None,
        **extra: Any,
    ) -> str:
        full = f"p-{self.tsid[2:]}-{pid}"
        base: dict[str, Any] = {
            "accountId": ACCOUNT,
            "direction": direction,
            "from": from_,
            "id": full,
            "missedCall": False,
            "muted": False,
            "park": {},
            "standAlone": False,
            "to": to,
            **extra,
        }
        if extension_id is not None:
            base["extensionId"] = extension_id
        self.parties[pid] = base
        return pid

    def ev(self, pid: str, code: str, at: float, reason: str | None = None, **extra: Any) -> None:
        self.seq += 1
        party = copy.deepcopy(self.parties[pid])
        status: dict[str, Any] = {"code": code, "rcc": False}
        if reason is not None:
            status["reason"] = reason
        if "peerId" in extra:
            status["peerId"] = extra.pop("peerId")
        party["status"] = status
        party.update(extra)
        self.shared[0] += 1
        uuid = f"{4000000000000000000 + self.shared[0]}"
        when = self.start + timedelta(seconds=at)
        path = f"/restapi/v1.0/account/{ACCOUNT}"
        if "extensionId" in party:
            path += f"/extension/{party['extensionId']}"
        self.events.append(
            {
                "uuid": uuid,
                "event": path + "/telephony/sessions",
                "timestamp": _iso(when + timedelta(milliseconds=40)),
                "subscriptionId": "sub-7f3e",
                "ownerId": "1001",
                "body": {
                    "sequence": self.seq,
                    "sessionId": self.session_id,
                    "telephonySessionId": self.tsid,
                    "serverId": "10.13.22.27.TAM",
                    "eventTime": _iso(when),
                    "origin": {"type": "Call"},
                    "parties": [party],
                },
            }
        )


def _iso(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def frame(envelope: dict[str, Any]) -> bytes:
    """The WebSocket ``[header, envelope]`` text frame carrying a notification."""
    header = {
        "type": "ServerNotification",
        "messageId": envelope["uuid"],
        "status": 200,
        "headers": {"RCRequestId": "5e1b8a34-0000-0000-0000-000000000000"},
    }
    return json.dumps([header, envelope]).encode()


def frames(*sessions: Session) -> list[bytes]:
    """All notifications of the sessions, in the order they were built."""
    merged = sorted(
        (e for s in sessions for e in s.events),
        key=lambda e: int(e["uuid"]),
    )
    return [frame(e) for e in merged]
