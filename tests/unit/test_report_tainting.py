"""The report's tainting modules: in every format, in the schema, and back from JSON."""

from __future__ import annotations

import json

from kdebug.model import ModuleRecord
from kdebug.report.load import report_from_dict
from kdebug.report.model import TaintingModule
from kdebug.report.render import render
from tests.unit.test_postmortem_render import SCHEMA, _jsonschema, sample_report

BID = "3647b6e81b4d0e9f63ca7d0ad5d83cb0eef586d0"


def tainted_report():
    r = sample_report()
    r.modules = [*r.modules, ModuleRecord("m", 28672, 0, 0xffffffffc05a6000, taints="OE", out_of_tree=True),
                 ModuleRecord("p", 16384, 0, 0xffffffffc05b0000, taints="P")]
    r.tainting_modules = [TaintingModule("m", "OE", BID, "/cap/modules/m.ko"), TaintingModule("p", "P", "", "")]
    return r


def test_every_format_lists_them_with_their_debug_info():
    r = tainted_report()
    text = render(r, "text")
    section = text.split("== Tainting modules ==")[1].split("==")[0]
    assert f"m         OE (out-of-tree, unsigned)  {BID}  /cap/modules/m.ko" in section
    assert "P (proprietary)" in section and "none: its frames have no file:line" in section
    assert "## Tainting modules" in render(r, "md")
    html = render(r, "html")
    assert 'id="tainting"' in html and "/cap/modules/m.ko" in html
    assert "Tainting modules" not in render(sample_report(), "text")  # none: no section


def test_json_validates_and_comes_back_equal():
    jsonschema = _jsonschema()
    doc = json.loads(render(tainted_report(), "json"))
    jsonschema.validate(doc, json.loads(SCHEMA.read_text()))
    assert doc["tainting_modules"][0] == {"name": "m", "taints": "OE", "build_id": BID,
                                          "debug_file": "/cap/modules/m.ko"}
    back = report_from_dict(doc)
    assert back.tainting_modules == tainted_report().tainting_modules
    # a 1.4 report (before the field) still loads, with none
    doc.pop("tainting_modules")
    assert report_from_dict({**doc, "schema_version": "1.4"}).tainting_modules == []
