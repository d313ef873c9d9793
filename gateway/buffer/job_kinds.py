"""How the queue's operator verbs name and treat each kind of job (forward, print, export, ...).

Forward's JobKind is here, since the buffer itself queues forwards; every other kind registers its
own on the queue (JobQueue.register_kind: gateway/print/store.py for print, gateway/media/export.py
for export), so that the queue's code never names another module's jobs or tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from gateway.buffer.queue import Job


@dataclass(frozen=True)
class JobKind:
    """How the operator verbs name and treat one kind of job.

    name: the jobs.kind value. describe(job): the job for an operator, without patient data
    ("forward of 1.2.3 to pacs"). finished: the past participle for a done job ("delivered").
    done_advice(job): why retrying a done job is refused and what to do instead (the text after
    "<what> <finished> at <time>; "). reforward_hint: added when re-forward is refused for this
    kind ("" for forward, which may be re-forwarded). retry_note(cur, job): a warning added when a
    dead job is queued again (inside the verb's transaction), or "". """

    name: str
    describe: Callable[[Job], str]
    finished: str = "finished"
    done_advice: Callable[[Job], str] = lambda job: "a finished job is not run again from the queue"
    reforward_hint: str = ""
    retry_note: Callable[[Any, Job], str] = lambda cur, job: ""


def generic_kind(name: str) -> JobKind:
    """For a kind nobody registered in this process (a CLI that did not load its module)."""
    return JobKind(name, describe=lambda job: f"{job.kind} job on {job.target}")


FORWARD_KIND = JobKind(
    "forward",
    describe=lambda job: f"forward of {job.sop_uid or 'a removed instance'} to {job.target}",
    finished="delivered",
    done_advice=lambda job: f"to send it again use `dicom-gateway re-forward {job.id} --to {job.target}`",
)
