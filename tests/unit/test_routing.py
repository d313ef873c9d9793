"""Routing on its own: which destinations an instance goes to, by source, modality and SOP class."""

from __future__ import annotations

import pytest
from pydicom.uid import CTImageStorage, MRImageStorage

from gateway.buffer.source import Source, SourceKind
from gateway.config import Config
from gateway.config.routes import SOURCE_KINDS
from gateway.config.load import ConfigError, load
from gateway.part10.attributes import InstanceAttributes
from gateway.routing import Router


def _attrs(modality: str = "CT", sop_class: str = str(CTImageStorage)) -> InstanceAttributes:
    return InstanceAttributes(transfer_syntax="1.2.840.10008.1.2.1", sop_class=sop_class,
                              sop_uid="1.2.3.4", study_uid="1.2.3", series_uid="1.2.3.1",
                              modality=modality)


def _router(routes) -> Router:
    return Router(Config.model_validate({
        "destinations": {"pacs": {"ae_title": "PACS", "port": 11122},
                         "archive": {"ae_title": "ARCH", "port": 11123},
                         "research": {"ae_title": "RES", "port": 11124}},
        "routes": routes,
    }))


def test_source_patterns_pick_routes():
    route = _router([{"to": ["archive"], "source": ["MEDIA:*"]},
                     {"to": ["research"], "source": ["CAPTURE:us?", "AE:CT1"]},
                     {"to": ["pacs"], "modality": ["CT"]}])
    assert route(_attrs(), Source.media("USB-2")) == ["archive", "pacs"]
    assert route(_attrs(), Source.media("")) == ["archive", "pacs"]  # an unlabelled stick is media too
    assert route(_attrs(), Source.capture("us1")) == ["research", "pacs"]
    assert route(_attrs(), Source.capture("us12")) == ["pacs"]
    # An AE title's padding is not part of its name; the match is case-sensitive like the title.
    assert route(_attrs(), Source.ae("CT1 ")) == ["research", "pacs"]
    assert route(_attrs(), Source.ae("ct1")) == ["pacs"]
    assert route(_attrs("MR", str(MRImageStorage)), Source.ae("CT1")) == ["research"]


def test_source_and_other_criteria_are_anded():
    route = _router([{"to": ["archive"], "source": ["AE:*"], "modality": ["MR"]}])
    assert route(_attrs("MR"), Source.ae("MR1")) == ["archive"]
    assert route(_attrs("CT"), Source.ae("MR1")) == []
    assert route(_attrs("MR"), Source.media("DVD")) == []


@pytest.mark.parametrize("pattern", ["CT1", "ae:CT1", "USB:stick", "MEDIA:", ":x"])
def test_bad_source_pattern_is_named(pattern, tmp_path):
    path = tmp_path / "gateway.toml"
    path.write_text(f'[destinations.pacs]\nae_title = "PACS"\nport = 11122\n\n'
                    f'[[routes]]\nto = ["pacs"]\nsource = ["AE:*", "{pattern}"]\n')
    with pytest.raises(ConfigError) as exc:
        load(path)
    (problem,) = exc.value.problems
    assert problem.startswith("routes.0.source.1:") and "KIND:NAME" in problem, problem


def test_config_knows_every_source_kind():
    assert set(SOURCE_KINDS) == {k.value for k in SourceKind}
