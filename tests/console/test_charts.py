"""The Pictures page's SVG: well-formed, labelled, scaled, escaped, no inline style."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from sscl_daemon.console.charts import Bar, colour, stacked_bars

SVG = "{http://www.w3.org/2000/svg}"


def test_stacked_bars_are_well_formed_accessible_svg() -> None:
    bars = [
        Bar("09:00", (("answered", 6), ("missed", 2))),
        Bar("10:00", (("answered", 0), ("missed", 0))),
        Bar("<11:00>", (("voicemail", 3),)),
    ]
    markup = stacked_bars("c", "Calls per hour", "One bar per hour", bars)
    root = ET.fromstring(str(markup))
    assert root.get("role") == "img"
    assert root.find(f"{SVG}title") is not None
    rects = root.findall(f"{SVG}rect")
    assert len(rects) == 3  # zero values draw nothing
    assert {r.get("fill") for r in rects} == {
        colour("answered"),
        colour("missed"),
        colour("voicemail"),
    }
    heights = [float(r.get("height", "0")) for r in rects]
    assert abs(heights[0] - 3 * heights[1]) < 0.2  # 6 answered vs 2 missed, same scale
    assert "<11:00>" not in str(markup)  # labels are escaped
    assert "style=" not in str(markup)  # the CSP allows no inline style


def test_an_empty_day_still_draws_an_axis() -> None:
    markup = stacked_bars("e", "Nothing yet", "No calls", [Bar("00:00", ())])
    root = ET.fromstring(str(markup))
    assert root.findall(f"{SVG}rect") == []
    assert root.findall(f"{SVG}line")


def test_axis_labels_are_round_numbers() -> None:
    for peak, labels in ((3, ["0", "1", "2", "3"]), (22, ["0", "10", "20", "30", "40", "50"])):
        markup = stacked_bars("a", "t", "d", [Bar("x", (("answered", peak),))])
        texts = [t.text for t in ET.fromstring(str(markup)).findall(f"{SVG}text")]
        assert texts[: len(labels)] == labels
