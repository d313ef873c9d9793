"""The config package's shared base: every section is built on it, and the print section is the
config's, not the print domain's (issue 7 item 4)."""

from __future__ import annotations

import pkgutil
from importlib import import_module

import pydantic
import pytest

import gateway.config as config
from gateway.config import base


def _sections():
    for info in pkgutil.iter_modules(config.__path__):
        module = import_module(f"gateway.config.{info.name}")
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, pydantic.BaseModel) and value.__module__ == module.__name__:
                yield value


def test_every_section_is_strict_through_the_one_base():
    found = list(_sections())
    assert config.Config in found and config.PrintSection in found and config.PrinterDevice in found
    for section in found:
        assert issubclass(section, base.Section), section
        assert section.model_config["extra"] == "forbid" and section.model_config["strict"], section
        assert section.model_config["frozen"], section


def test_one_ae_title_rule_for_every_section():
    # print.ae_title had its own copy of the check with its own wording; now one rule answers all.
    for key in ("ae.title", "print.ae_title"):
        with pytest.raises(config.ConfigError) as err:
            config.load(None, [f'{key}="WAY_TOO_LONG_A_TITLE"'])
        assert err.value.problems == [f"{key}: AE title 'WAY_TOO_LONG_A_TITLE' is longer than 16 characters"]


def test_the_print_domain_reads_its_section_from_the_config():
    from gateway.print import profile
    assert profile.PrintSection is config.PrintSection and profile.PrinterDevice is config.PrinterDevice
    assert profile.PrintSection.__module__ == "gateway.config.print"


def test_bounded_numbers_and_uids():
    with pytest.raises(TypeError):
        base.FloatRange(le=1)  # a float range says whether 0 is allowed: exactly one lower bound
    with pytest.raises(TypeError):
        base.FloatRange(ge=0, gt=0, le=1)
    assert base.is_uid("1.2.840.10008.1.1") and not base.is_uid("1..2") and not base.is_uid("")
    assert not base.is_uid("1." + "2" * 63) and base.is_uid("1." + "2" * 62)
    assert base.backoff_problems(5, 1) and not base.backoff_problems(1, 5)
