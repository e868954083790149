"""Realistic call flows, built from the RingCentral documentation and real captures.

Each function returns the sessions of one call; times are seconds after T0.
Shared by the scenario tests, the property tests and the replay CLI tests.
"""

from __future__ import annotations

from tests.calls.builder import ALICE_DID, CUSTOMER, MAIN_NUMBER, Session, ext, pstn


def _alice_answers(s: Session, answer_at: float, dialled: str = ALICE_DID) -> None:
    """The customer dials, Alice's phone rings and she answers at ``answer_at``."""
    s.party("1", direction="Outbound", from_=pstn(CUSTOMER), to=pstn(dialled))
    s.party(
        "2",
        direction="Inbound",
        extension_id="1001",
        from_=pstn(CUSTOMER),
        to=ext("1001", ALICE_DID),
    )
    s.ev("1", "Setup", 0.0)
    s.ev("2", "Setup", 0.2)
    s.ev("2", "Proceeding", 0.4)
    s.ev("2", "Answered", answer_at)
    s.ev("1", "Answered", answer_at + 0.1)  # fmt: skip


def outbound(answer: bool = True, reason: str | None = None) -> Session:
    """Alice (101) calls a customer from her phone (RC ext -> PSTN capture shape)."""
    s = Session("s-a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d60001")
    s.party(
        "1",
        direction="Outbound",
        extension_id="1001",
        from_=ext("1001", ALICE_DID, "Alice Agent") | {"extensionNumber": "101"},
        to=pstn(CUSTOMER),
    )
    s.party("2", direction="Inbound", from_=pstn(ALICE_DID), to=pstn(CUSTOMER))
    s.ev("1", "Setup", 0.0)
    s.ev("2", "Proceeding", 0.8)
    s.ev("1", "Proceeding", 0.9)
    if not answer:
        s.ev("2", "Disconnected", 25.0, reason)
        s.ev("1", "Disconnected", 25.1)
        return s
    s.ev("2", "Answered", 10.0)
    s.ev("1", "Answered", 10.1)
    s.ev("1", "Hold", 20.0)
    s.ev("1", "Answered", 25.0)
    s.ev("1", "Disconnected", 60.0)
    s.ev("2", "Disconnected", 60.2)
    return s  # fmt: skip


def inbound_direct(outcome: str = "answered", recording: bool = False) -> Session:
    """A customer dials Alice's direct number; answered, missed or voicemail."""
    s = Session("s-a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d60002")
    s.party("1", direction="Outbound", from_=pstn(CUSTOMER, "ACME CORP"), to=pstn(ALICE_DID))
    s.party(
        "2",
        direction="Inbound",
        extension_id="1001",
        from_=pstn(CUSTOMER, "ACME CORP"),
        to=ext("1001", ALICE_DID, "Alice Agent"),
    )
    s.ev("1", "Setup", 0.0)
    s.ev("2", "Setup", 0.3)
    s.ev("2", "Proceeding", 0.5)
    if outcome == "answered":
        s.ev("2", "Answered", 8.0)
        s.ev("1", "Answered", 8.1)
        if recording:
            s.ev("2", "Answered", 9.0, recordings=[{"id": "7181543004", "active": True}])
        s.ev("2", "Hold", 40.0)
        s.ev("2", "Answered", 52.0)
        s.ev("2", "Disconnected", 100.0)
        s.ev("1", "Disconnected", 100.1)
    elif outcome == "missed":
        s.ev("1", "Disconnected", 18.0)
        s.ev("2", "Disconnected", 18.1)
    else:  # voicemail; the guide spells it "Voicemail", the spec "VoiceMail"
        s.ev("2", "Voicemail", 20.0)
        s.ev("1", "Answered", 20.1)
        s.ev("1", "Disconnected", 45.0)
        s.ev("2", "Disconnected", 45.1)
    return s  # fmt: skip


def ivr_queue(hang_up_in_ivr: bool = False) -> Session:
    """Main number -> IVR -> Sales Queue; both agents ring, Bob (102) answers."""
    s = Session("s-a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d60003")
    s.party("1", direction="Outbound", from_=pstn(CUSTOMER, "ACME CORP"), to=pstn(MAIN_NUMBER))
    s.party(
        "2",
        direction="Inbound",
        extension_id="2000",
        from_=pstn(CUSTOMER),
        to=ext("2000", MAIN_NUMBER, "Main IVR"),
    )
    s.ev("1", "Setup", 0.0)
    s.ev("2", "Setup", 0.2)
    s.ev("1", "Answered", 1.0)  # the IVR picked up; no person yet
    if hang_up_in_ivr:
        s.ev("1", "Disconnected", 15.0)
        s.ev("2", "Disconnected", 15.1)
        return s
    s.ev("2", "Disconnected", 10.0, "CallerInputRedirect")
    s.party(
        "3",
        direction="Inbound",
        extension_id="3000",
        from_=pstn(CUSTOMER),
        to=ext("3000", MAIN_NUMBER, "Sales Queue"),
    )
    queue_info = {
        "queueCall": True,
        "uiCallInfo": {
            "primary": {"type": "QueueName", "value": "Sales Queue"},
            "additional": {"type": "CallerIdName", "value": "ACME CORP"},
        },
    }
    for pid, ext_id in (("4", "1001"), ("5", "1002")):
        s.party(
            pid,
            direction="Inbound",
            extension_id=ext_id,
            from_=pstn(CUSTOMER, "Sales Queue - ACME CORP"),
            to=ext("3000", MAIN_NUMBER, "Sales Queue"),
            **queue_info,
        )
    s.ev("3", "Setup", 10.2)
    s.ev("4", "Proceeding", 12.0)  # queue members start at Proceeding
    s.ev("5", "Proceeding", 12.0)
    s.ev("5", "Answered", 20.0)
    s.ev("4", "Disconnected", 20.1, "Pickup")
    s.ev("3", "Disconnected", 20.2)
    s.ev("5", "Disconnected", 80.0)
    s.ev("1", "Disconnected", 80.1)
    return s  # fmt: skip


def blind_transfer() -> Session:
    """Alice answers and blind-transfers the caller to Bob (102), who answers."""
    s = Session("s-a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d60004")
    _alice_answers(s, 5.0)
    s.party("3", direction="Inbound", extension_id="1002",
            from_=pstn(CUSTOMER), to=ext("1002", "102"))  # fmt: skip
    s.ev("2", "Disconnected", 30.0, "BlindTransfer")
    s.ev("3", "Setup", 30.1)
    s.ev("3", "Proceeding", 30.3)
    s.ev("3", "Answered", 35.0)
    s.ev("3", "Disconnected", 90.0)
    s.ev("1", "Disconnected", 90.1)
    return s  # fmt: skip


def warm_transfer() -> tuple[Session, Session]:
    """Alice talks to the customer (A), consults Bob (B), then bridges them (Gone/AttendedTransfer)."""
    a = Session("s-a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6000a")
    b = Session("s-a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6000b", session_id="4119612999", shared=a.shared)
    _alice_answers(a, 5.0)
    a.ev("2", "Hold", 30.0)
    b.party(
        "1",
        direction="Outbound",
        extension_id="1001",
        from_=ext("1001", "101"),
        to=ext("1002", "102"),
    )
    b.party(
        "2",
        direction="Inbound",
        extension_id="1002",
        from_=ext("1001", "101"),
        to=ext("1002", "102"),
    )
    b.ev("1", "Setup", 31.0)
    b.ev("2", "Setup", 31.2)
    b.ev("1", "Answered", 31.3)
    b.ev("2", "Proceeding", 31.4)
    b.ev("2", "Answered", 35.0)
    peer_b = {
        "telephonySessionId": b.tsid,
        "sessionId": b.session_id,
        "partyId": f"p-{b.tsid[2:]}-1",
    }
    peer_a = {
        "telephonySessionId": a.tsid,
        "sessionId": a.session_id,
        "partyId": f"p-{a.tsid[2:]}-1",
    }
    a.ev("2", "Gone", 60.0, "AttendedTransfer", peerId=peer_b)
    a.ev("1", "Gone", 60.1, "AttendedTransfer", peerId=peer_b)
    b.ev("1", "Gone", 60.2, "AttendedTransfer", peerId=peer_a)
    b.party("3", direction="Outbound", from_=pstn(CUSTOMER), to=ext("1002", "102"))
    b.ev("3", "Answered", 60.3)
    b.ev("2", "Disconnected", 120.0)
    b.ev("3", "Disconnected", 120.1)
    return a, b  # fmt: skip


def park_pickup() -> Session:
    """Alice answers and parks the call; Bob picks it up from the park location."""
    s = Session("s-a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d60005")
    _alice_answers(s, 4.0, dialled=MAIN_NUMBER)
    s.party("3", direction="Inbound", extension_id="1002",
            from_=pstn(CUSTOMER), to=ext("8001", "8001", "Park 1"))  # fmt: skip
    s.ev("2", "Parked", 30.0, park={"id": "8001"})
    s.ev("1", "Parked", 30.02, park={"id": "8001"})
    s.ev("2", "Disconnected", 31.0, "CallPark")
    s.ev("3", "Setup", 50.0)
    s.ev("3", "Answered", 50.1)
    s.ev("1", "Answered", 50.15, park={})
    s.ev("3", "Disconnected", 100.0)
    s.ev("1", "Disconnected", 100.1)
    return s  # fmt: skip


def internal() -> Session:
    """Alice (101) calls Bob (102); short extension numbers in from/to (RC-RC capture shape)."""
    s = Session("s-a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d60006")
    s.party(
        "1",
        direction="Outbound",
        extension_id="1001",
        from_=ext("1001", "101", "Alice Agent"),
        to=ext("1002", "102", "Bob Agent"),
    )
    s.party(
        "2",
        direction="Inbound",
        extension_id="1002",
        from_=ext("1001", "101", "Alice Agent"),
        to=ext("1002", "102", "Bob Agent"),
    )
    s.ev("1", "Setup", 0.0)
    s.ev("2", "Setup", 0.1)
    s.ev("1", "Answered", 0.2)  # the caller's party is Answered at once on RC -> RC calls
    s.ev("2", "Proceeding", 0.3)
    s.ev("2", "Answered", 6.0)
    s.ev("1", "Disconnected", 30.0)
    s.ev("2", "Disconnected", 30.1)
    return s  # fmt: skip
