"""Export rules: which studies of the buffer go on a blank medium when one is inserted (issue 8
item 2; the config is gateway/config/media.py's ExportRule).

The decision is a pure function over study rows (``select``): one row per study with what the
rules ask about (modalities, sources, arrival times, whether a marked export took it), read from
the index in one query (``study_rows``).  Rules are tried in config order for the drive a medium
went into; the first one that selects at least one study decides (``decide``), so a specific rule
("CT from AE:CT1 to the DVD") placed before a catch-all wins, as in a firewall's list.

"Exported" is per study, in the index (migration 5, media_exports): an export queued by a rule
with mark_exported = true marks each of its studies while the job is not dead (queued, in flight
or done: a study already on its way to a medium is not queued a second time; a failed export that
an operator gave up on frees it again).  A rule with mark_exported = false records its jobs
unmarked, so its studies stay "not exported".

Nothing here reads or returns patient data: study rows carry UIDs, modalities, sources and times.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

from gateway.buffer.index import Index
from gateway.buffer.source import Source
from gateway.config.media import ANY_DRIVE, ExportRule


@dataclass(frozen=True)
class StudyRow:
    """One study as the rules see it.  ``modalities``: of its series; ``sources``: where its
    instances came from as source text ("AE:CT1", "MEDIA:cd"); ``first_received`` /
    ``last_received``: seconds since the epoch of its first and latest instance's arrival;
    ``instances``: how many the buffer holds; ``exported``: a marking export job of it is not dead."""
    study_uid: str
    modalities: frozenset[str]
    sources: frozenset[str]
    first_received: float
    last_received: float
    instances: int
    exported: bool = False


@dataclass(frozen=True)
class Selection:
    """What one rule took: ``study_uids`` oldest first; ``still_arriving``: matching studies left
    out because their last instance is younger than stable_s; ``over_limit``: matching studies
    left out past max_studies; ``wait_s``: seconds until the youngest still-arriving study is
    stable (0.0 when none is)."""
    rule: ExportRule
    study_uids: tuple[str, ...]
    still_arriving: int = 0
    over_limit: int = 0
    wait_s: float = 0.0


def applies_to(rule: ExportRule, drive: str) -> bool:
    """Whether ``rule`` is for media inserted into ``drive``."""
    return rule.drive in (ANY_DRIVE, drive)


def matches(rule: ExportRule, study: StudyRow, now: float) -> bool:
    """Whether ``study`` meets ``rule``'s criteria (take, modality, source, within_hours), stability
    aside.  ``now``: seconds since the epoch."""
    if rule.take == "not-exported" and study.exported:
        return False
    if rule.modality and not study.modalities.intersection(rule.modality):
        return False
    if rule.source and not any(fnmatchcase(src, pat) for src in study.sources for pat in rule.source):
        return False
    if rule.within_hours and study.last_received < now - rule.within_hours * 3600:
        return False
    return True


def select(rule: ExportRule, studies: Iterable[StudyRow], now: float) -> Selection:
    """The studies ``rule`` puts on a medium at ``now`` (seconds since the epoch): those that match,
    whose last instance arrived at least ``rule.stable_s`` ago (a study still arriving is never
    cut), oldest first (by first arrival), at most ``rule.max_studies``."""
    picked: list[StudyRow] = []
    arriving = 0
    wait = 0.0
    for study in studies:
        if not matches(rule, study, now):
            continue
        age = now - study.last_received
        if age < rule.stable_s:
            arriving += 1
            wait = max(wait, rule.stable_s - age)
            continue
        picked.append(study)
    picked.sort(key=lambda s: (s.first_received, s.study_uid))
    kept = picked[:rule.max_studies]
    return Selection(rule, tuple(s.study_uid for s in kept), arriving, len(picked) - len(kept), wait)


def decide(rules: Sequence[ExportRule], drive: str, studies: Sequence[StudyRow],
           now: float) -> tuple[Selection | None, list[Selection]]:
    """Try ``rules`` (config order) for a blank medium in ``drive``: returns (the first selection
    with studies or None, every selection tried, for the log line that says why nothing was)."""
    tried = []
    for rule in rules:
        if not applies_to(rule, drive):
            continue
        sel = select(rule, studies, now)
        tried.append(sel)
        if sel.study_uids:
            return sel, tried
    return None, tried


def _source_text(calling_ae: str) -> str:
    # The index keeps a network peer's bare title and other sources rendered ("MEDIA:cd").
    return str(Source.parse(calling_ae))


_ROWS = """
SELECT s.study_uid, group_concat(DISTINCT se.modality) AS modalities,
       group_concat(DISTINCT i.calling_ae || char(31)) AS sources,
       min(i.received_at) AS first_received, max(i.received_at) AS last_received,
       count(i.id) AS instances,
       EXISTS (SELECT 1 FROM media_exports e JOIN jobs j ON j.id = e.job_id
               WHERE e.study_uid = s.study_uid AND e.marks = 1 AND j.state != 'dead') AS exported
FROM studies s JOIN series se ON se.study_fk = s.id JOIN instances i ON i.series_fk = se.id
GROUP BY s.id
"""


def study_rows(index: Index) -> list[StudyRow]:
    """Every study of the buffer with at least one instance, as StudyRow.  Raises sqlite3.Error."""
    out = []
    for r in index.query(_ROWS):
        # group_concat(DISTINCT) joins with ",": no CS modality holds one, an AE title may, so each
        # source ends in the unit separator (char 31), which no AE title or label holds.
        mods = frozenset(m for m in (r["modalities"] or "").split(",") if m)
        sources = frozenset(_source_text(a) for a in (r["sources"] or "").rstrip("\x1f").split("\x1f,") if a)
        out.append(StudyRow(r["study_uid"], mods, sources, r["first_received"], r["last_received"],
                            r["instances"], bool(r["exported"])))
    return out


def record_export(index: Index, study_uids: Iterable[str], job_ids: Iterable[int], marks: bool) -> None:
    """Record that jobs ``job_ids`` export ``study_uids`` (every pair), marking them exported when
    ``marks``.  Raises sqlite3.Error (a job id that does not exist: IntegrityError)."""
    rows = [(uid, job, int(marks)) for uid in study_uids for job in job_ids]
    with index.tx() as cur:
        cur.executemany("INSERT OR IGNORE INTO media_exports(study_uid, job_id, marks) VALUES (?, ?, ?)", rows)

