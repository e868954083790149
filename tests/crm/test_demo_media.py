"""The demo shows the recordings and voicemail attached in the CRM stand-in (issue 15)."""

from __future__ import annotations

import io

from sscl_daemon.demo import DemoReport, attached_media, print_new_media
from sscl_daemon.simulator.crm import hubspot, pipedrive, salesforce
from sscl_daemon.simulator.crm.common import StandInState


def _file(fid: str, name: str, size: int) -> hubspot.HsFile:
    return hubspot.HsFile(fid, name, "/sscl-daemon/calls", "PRIVATE", b"x" * size, "audio/wav")


def test_attached_media_of_each_stand_in() -> None:
    hs = hubspot.HubSpotState()
    hs.files["1"] = _file("1", "recording-7.wav", 2048)
    sf = salesforce.SalesforceState()
    sf.versions["068A"] = {"PathOnClient": "voicemail-9.wav"}
    sf.version_data["068A"] = b"y" * 10
    pd = pipedrive.PipedriveState()
    pd.recordings["log"] = ("recording-8.wav", b"z")
    assert attached_media(hs) == [("recording-7.wav", 2048)]
    assert attached_media(sf) == [("voicemail-9.wav", 10)]
    assert attached_media(pd) == [("recording-8.wav", 1)]
    assert attached_media(StandInState()) == []


def test_each_attachment_is_printed_once() -> None:
    hs = hubspot.HubSpotState()
    hs.files["1"] = _file("1", "recording-7.wav", 4096)
    report, out = DemoReport(), io.StringIO()
    print_new_media(hs, "HubSpot", report, out)
    hs.files["2"] = _file("2", "voicemail-3.wav", 1)
    print_new_media(hs, "HubSpot", report, out)
    print_new_media(hs, "HubSpot", report, out)
    assert [line.strip() for line in out.getvalue().splitlines()] == [
        "+ recording-7.wav attached in HubSpot (4 KB)",
        "+ voicemail-3.wav attached in HubSpot (0 KB)",
    ]
    assert report.attached == 2
