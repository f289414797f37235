"""docs/instruments.md is generated from the drivers' parameter tables and must be current."""

from __future__ import annotations

import importlib.util
from dataclasses import replace
from pathlib import Path

import pytest

TOOL = Path(__file__).resolve().parents[1] / "docs" / "tools" / "instruments_reference.py"


def _tool():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("instruments_reference", TOOL)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_instrument_reference_is_current() -> None:
    tool = _tool()
    assert tool.main(["--check"]) == 0, "run: python docs/tools/instruments_reference.py"
    text = tool.PAGE.read_text(encoding="utf-8")
    for command in ("`SOUR{ch}:FUNC:ARB:SRAT {value}`", "`:WAV:POIN {value}`", "`:SOUR:VOLT:ILIM {value}`",
                    "`CURR {value},(@{ch})`", "`sour{ch}:volt:slew {value}`"):
        assert command in text


def test_the_check_fails_when_a_table_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    from hamsim.drivers.keithley_2450 import Keithley2450

    tool = _tool()
    table = dict(Keithley2450.parameters)
    table["level"] = replace(table["level"], set=":SOUR:VOLT:LEV {value}")
    monkeypatch.setattr(Keithley2450, "parameters", table)
    assert tool.main(["--check"]) == 1
