"""Export rules (gateway/media/rules.py, [[media.export_rules]]): the pure selection over study rows
(stability timer, modality, source, hours, the exported flag, order and limit, first rule wins),
the rows read from a real buffer's index, and the config's refusals by name."""

from __future__ import annotations

import shutil

import pytest
from datasets import make_ct
from pydantic import ValidationError

from gateway.buffer.ingest import Buffer
from gateway.buffer.intake import Intake
from gateway.buffer.source import Source
from gateway.config import Config
from gateway.config.media import ExportRule
from gateway.dicom.sop_classes import storage_sop_classes
from gateway.events import EventBus
from gateway.media.rules import StudyRow, decide, record_export, select, study_rows
from gateway.part10.attributes import configure_pydicom
from gateway.routing import Router

NOW = 1_800_000_000.0
HOUR = 3600.0


def study(uid: str, *, mods=("CT",), sources=("AE:CT1",), first: float = NOW - HOUR, last: float | None = None,
          exported: bool = False) -> StudyRow:
    return StudyRow(uid, frozenset(mods), frozenset(sources), first, first if last is None else last, 1, exported)


def rule(**kw) -> ExportRule:
    return ExportRule.model_validate({"name": kw.pop("name", "r"), **kw})


# -- the pure selection ----------------------------------------------------------------------------
def test_a_study_still_arriving_is_not_cut_and_the_wait_is_said():
    rows = [study("1.1", last=NOW - 61), study("1.2", first=NOW - 100, last=NOW - 20)]
    sel = select(rule(stable_s=60), rows, NOW)
    assert sel.study_uids == ("1.1",)
    assert sel.still_arriving == 1 and sel.wait_s == pytest.approx(40)
    # Once stable it goes.
    assert select(rule(stable_s=60), rows, NOW + 41).study_uids == ("1.1", "1.2")
    # stable_s = 0: nothing is held back.
    assert select(rule(stable_s=0), rows, NOW).study_uids == ("1.1", "1.2")


def test_modality_source_and_hours_each_narrow_the_selection():
    rows = [study("ct", mods=("CT",), sources=("AE:CT1",), first=NOW - 2 * HOUR),
            study("mr", mods=("MR", "SR"), sources=("AE:MR7",), first=NOW - 30 * HOUR),
            study("disc", mods=("CT",), sources=("MEDIA:cd",), first=NOW - 5 * HOUR)]
    assert select(rule(modality=["MR"]), rows, NOW).study_uids == ("mr",)
    assert select(rule(modality=["SR", "US"]), rows, NOW).study_uids == ("mr",)
    assert select(rule(source=["AE:CT*"]), rows, NOW).study_uids == ("ct",)
    assert select(rule(source=["MEDIA:*"]), rows, NOW).study_uids == ("disc",)
    assert select(rule(within_hours=24), rows, NOW).study_uids == ("disc", "ct")
    assert select(rule(within_hours=3), rows, NOW).study_uids == ("ct",)
    # ANDed across criteria.
    assert select(rule(modality=["CT"], source=["AE:*"], within_hours=24), rows, NOW).study_uids == ("ct",)
    # Empty lists and 0 hours match everything, oldest first.
    assert select(rule(), rows, NOW).study_uids == ("mr", "disc", "ct")


def test_the_exported_flag_keeps_a_study_off_unless_the_rule_takes_all():
    rows = [study("old", exported=True, first=NOW - 3 * HOUR), study("new")]
    assert select(rule(), rows, NOW).study_uids == ("new",)
    assert select(rule(take="all"), rows, NOW).study_uids == ("old", "new")


def test_max_studies_keeps_the_oldest_and_counts_the_rest():
    rows = [study(f"1.{i}", first=NOW - (10 - i) * HOUR) for i in range(5)]
    sel = select(rule(max_studies=2), rows, NOW)
    assert sel.study_uids == ("1.0", "1.1") and sel.over_limit == 3


def test_the_first_rule_for_the_drive_that_selects_something_decides():
    rows = [study("ct", mods=("CT",)), study("mr", mods=("MR",))]
    rules = [rule(name="dvd-only", drive="dvd"), rule(name="us", modality=["US"]),
             rule(name="mr", modality=["MR"]), rule(name="all")]
    chosen, tried = decide(rules, "cd", rows, NOW)
    assert chosen.rule.name == "mr" and chosen.study_uids == ("mr",)
    assert [s.rule.name for s in tried] == ["us", "mr"]  # the dvd rule is not for drive cd
    chosen, tried = decide(rules[:2], "cd", rows, NOW)
    assert chosen is None and [s.rule.name for s in tried] == ["us"]
    assert decide(rules[:1], "cd", rows, NOW) == (None, [])


# -- rows from a real buffer -------------------------------------------------------------------------
@pytest.fixture
def buffer(tmp_path):
    configure_pydicom()
    config = Config.model_validate({})
    buf = Buffer(tmp_path / "buffer", 0, "replace", Router(config))
    intake = Intake(config, buf, EventBus(), storage_sop_classes())
    buf.intake = intake
    yield buf
    buf.close()


def store(buf, tmp_path, source: Source, study_uid: str, modality: str = "CT", n: int = 1) -> None:
    for i in range(n):
        path = tmp_path / f"src-{study_uid}-{i}.dcm"
        ds = make_ct(path, study_uid=study_uid, number=i + 1)
        if modality != "CT":
            ds.Modality = modality
            ds.save_as(path, enforce_file_format=True)
        incoming = buf.files.new_incoming_path()
        shutil.copyfile(path, incoming)
        result = buf.intake.take(incoming, source, str(ds.SOPClassUID), str(ds.SOPInstanceUID))
        assert result.ok, result.reason


def test_study_rows_read_modalities_sources_times_and_the_marked_exports(buffer, tmp_path):
    store(buffer, tmp_path, Source.ae("CT,1"), "1.2.3.1", n=2)
    store(buffer, tmp_path, Source.media("usb"), "1.2.3.1", modality="MR")
    store(buffer, tmp_path, Source.ae("MR7"), "1.2.3.2", modality="MR")
    rows = {r.study_uid: r for r in study_rows(buffer.index)}
    a, b = rows["1.2.3.1"], rows["1.2.3.2"]
    assert a.modalities == {"CT", "MR"} and a.sources == {"AE:CT,1", "MEDIA:usb"} and a.instances == 3
    assert a.first_received <= a.last_received and not a.exported
    assert b.modalities == {"MR"} and b.sources == {"AE:MR7"}

    marked = buffer.queue.enqueue("export", "cd", "{}")
    unmarked = buffer.queue.enqueue("export", "cd", "{}")
    record_export(buffer.index, ["1.2.3.1"], [marked], marks=True)
    record_export(buffer.index, ["1.2.3.2"], [unmarked], marks=False)
    rows = {r.study_uid: r for r in study_rows(buffer.index)}
    assert rows["1.2.3.1"].exported and not rows["1.2.3.2"].exported
    # Done still counts; dead (an operator gave up on it) does not.
    buffer.queue.complete([marked])
    gave_up = buffer.queue.enqueue("export", "cd", "{}")
    record_export(buffer.index, ["1.2.3.2"], [gave_up], marks=True)
    assert {r.study_uid for r in study_rows(buffer.index) if r.exported} == {"1.2.3.1", "1.2.3.2"}
    assert buffer.queue.dead_letter([gave_up], "disc full") == 1
    assert {r.study_uid for r in study_rows(buffer.index) if r.exported} == {"1.2.3.1"}


# -- the config ------------------------------------------------------------------------------------
def test_the_config_refuses_bad_rule_values_by_name():
    def problem(rules: list[dict], drives=None) -> str:
        with pytest.raises(ValidationError) as err:
            Config.model_validate({"media": {"drives": drives or {"cd": {"kind": "optical-sim"}},
                                             "export_rules": rules}})
        return str(err.value)

    assert "export_rules.0.copies" in problem([{"name": "a", "copies": 0}])
    assert "export_rules.0.stable_s" in problem([{"name": "a", "stable_s": -1}])
    assert "export_rules.0.within_hours" in problem([{"name": "a", "within_hours": 10**6}])
    assert "export_rules.0.take" in problem([{"name": "a", "take": "some"}])
    assert "export_rules.0.modality.0" in problem([{"name": "a", "modality": ["ct"]}])
    assert "export_rules.0.source.0" in problem([{"name": "a", "source": ["CT1"]}])
    assert "export_rules.0.colour" in problem([{"name": "a", "colour": "red"}])
    assert "export_rules.1.name: 'a' names two rules" in problem([{"name": "a"}, {"name": "a"}])
    assert "export_rules.0.drive: 'dvd' is not a drive (cd)" in problem([{"name": "a", "drive": "dvd"}])
    ok = Config.model_validate({"media": {"drives": {"cd": {"kind": "optical-sim"}},
                                          "export_rules": [{"name": "a", "drive": "cd"}, {"name": "b"}]}})
    assert [r.drive for r in ok.media.export_rules] == ["cd", "any"]
