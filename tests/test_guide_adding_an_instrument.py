"""docs/adding-an-instrument.md runs as written: its Python blocks (the made-up Acme PS-1 driver and
its tests) are executed in one module, its YAML block is saved next to that module as the guide says,
and every ``test_*`` function the guide defines is run here.  A change of the driver API that the guide
does not follow fails this test."""

from __future__ import annotations

import inspect
import re
import sys
import tomllib
import types
from pathlib import Path

import pytest

PAGE = Path(__file__).resolve().parents[1] / "docs" / "adding-an-instrument.md"
_FENCE = re.compile(r"^```(\w+)\n(.*?)^```\s*$", re.M | re.S)


def blocks(language: str) -> list[str]:
    return [body for lang, body in _FENCE.findall(PAGE.read_text(encoding="utf-8")) if lang == language]


@pytest.fixture(scope="module")
def guide(tmp_path_factory: pytest.TempPathFactory) -> types.ModuleType:
    """The guide's layout: the first Python block is the module ``acme_lab.acme_ps1``, the others one
    test module in a test folder holding the YAML block as ``acme_ps1.yaml``."""
    where = tmp_path_factory.mktemp("acme_lab_tests")
    (yaml_text,) = blocks("yaml")
    (where / "acme_ps1.yaml").write_text(yaml_text, encoding="utf-8")
    driver_code, *test_code = blocks("python")
    package = types.ModuleType("acme_lab")
    package.__path__ = []  # a namespace for the driver module
    driver = types.ModuleType("acme_lab.acme_ps1")
    driver.__file__ = str(where / "acme_ps1.py")
    tests = types.ModuleType("test_acme_ps1")
    tests.__file__ = str(where / "test_acme_ps1.py")
    sys.modules.update({"acme_lab": package, "acme_lab.acme_ps1": driver, "test_acme_ps1": tests})
    try:
        exec(compile(driver_code, driver.__file__, "exec"), driver.__dict__)  # noqa: S102
        package.acme_ps1 = driver  # type: ignore[attr-defined]
        exec(compile("\n".join(test_code), tests.__file__, "exec"), tests.__dict__)  # noqa: S102
        yield tests
    finally:
        for name in ("acme_lab", "acme_lab.acme_ps1", "test_acme_ps1"):
            sys.modules.pop(name, None)


GUIDE_TESTS = ["test_acme_ps1_conversation", "test_acme_ps1_refuses_before_sending", "test_acme_ps1_opens_by_address",
               "test_acme_ps1_on_pyvisa_sim"]


def test_the_guide_defines_the_tests_this_file_runs(guide: types.ModuleType) -> None:
    defined = sorted(n for n, f in vars(guide).items() if n.startswith("test_") and callable(f))
    assert defined == sorted(GUIDE_TESTS)


@pytest.mark.parametrize("name", GUIDE_TESTS)
def test_guide_code_passes(guide: types.ModuleType, name: str, tmp_path: Path) -> None:
    fn = getattr(guide, name)
    kwargs = {"tmp_path": tmp_path} if "tmp_path" in inspect.signature(fn).parameters else {}
    fn(**kwargs)


def test_the_guide_driver_is_what_it_claims(guide: types.ModuleType) -> None:
    from hamsim.drivers.instrument import DcSource

    cls = guide.AcmePS1
    (toml_text,) = blocks("toml")
    eps = tomllib.loads(toml_text)["project"]["entry-points"]["hamsim.instruments"]
    assert eps == {cls.model: "acme_lab.acme_ps1:AcmePS1"}
    assert all(row.source for row in cls.parameters.values())  # every command names its manual section
    from hamsim.drivers.transport import ScriptedLink

    assert isinstance(cls(ScriptedLink([])), DcSource)


def test_a_broken_guide_fails(guide: types.ModuleType) -> None:
    """The runner is not vacuous: the guide's conversation test fails against a driver that sends
    one byte differently."""
    broken = type("Broken", (guide.AcmePS1,), {"_safe_state": lambda self: (self.write("OUTP 0"), self.done("x"))})
    assert guide.AcmePS1.__module__ == "acme_lab.acme_ps1"  # imported by the tests, as in a lab package
    original = guide.AcmePS1
    guide.AcmePS1 = broken
    try:
        with pytest.raises(Exception, match="OUTP 0"):
            guide.test_acme_ps1_conversation()
    finally:
        guide.AcmePS1 = original
