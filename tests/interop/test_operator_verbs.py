"""Operator verbs against the running service with Orthanc as the PACS (issue 14 item 1).

The field report: with the PACS down, three images sent, `queue retry` on the first (still queued)
job, then the PACS started: it received two. Here it must receive all three; a verb must wake the
service out of its backoff; what was delivered can be sent again with `re-forward`.
"""

from __future__ import annotations

import urllib.request

import pydicom
import pytest
from datasets import make_series
from dicom_bytes import jobs
from peers import free_port, storescu, wait_until
from test_print import imager  # noqa: F401 - the imager fixture

pytestmark = pytest.mark.interop


def _send(gw, files) -> None:
    r = storescu(gw.port, files)
    assert r.returncode == 0 and "E:" not in r.stderr, r.stderr


def _states(gw) -> list[str]:
    return [state for _, _, state, _, _ in jobs(gw.buffer)]


def _pacs_down_with_three_waiting(gateway_factory, late_orthanc, tmp_path, retry_initial_s, retry_max_s):
    port = free_port()
    orthanc = late_orthanc(port)
    gw = gateway_factory({"destinations": {"pacs": {
        "ae_title": orthanc.aet, "port": orthanc.dicom, "retry_initial_s": retry_initial_s,
        "retry_max_s": retry_max_s}}}, port=port)
    files = make_series(tmp_path / "in", 3)
    _send(gw, files)
    wait_until(lambda: "pacs unreachable" in gw.log, 30, what="the forwarder to find the PACS down")
    wait_until(lambda: _states(gw) == ["queued"] * 3, 30, what="three jobs waiting")
    return gw, orthanc, files


def test_retry_of_a_waiting_job_loses_nothing(gateway_factory, late_orthanc, tmp_path):
    # The field's timing: short backoffs, retry while the PACS is still down, then the PACS starts.
    gw, orthanc, files = _pacs_down_with_three_waiting(gateway_factory, late_orthanc, tmp_path, 0.5, 1.0)
    first = jobs(gw.buffer)[0][0]
    r = gw.cli("queue", "retry", str(first))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 jobs queued again" in r.stdout and "told to act on it now" in r.stdout
    assert _states(gw)[0] in ("queued", "in_flight")  # never "done" before it was sent
    orthanc.start()
    wait_until(lambda: orthanc.count() == 3, 60, what="the PACS to receive all three")
    wait_until(lambda: _states(gw) == ["done"] * 3, 30, what="all three jobs done")
    assert "superseded" not in str(jobs(gw.buffer))
    for f in files:
        assert orthanc.lookup(str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID))


def test_a_verb_wakes_the_service_out_of_its_backoff(gateway_factory, late_orthanc, tmp_path):
    # Backoff of ten minutes: without the wake-up the test's bounded wait would run out.
    gw, orthanc, _files = _pacs_down_with_three_waiting(gateway_factory, late_orthanc, tmp_path, 600, 600)
    orthanc.start()
    first = jobs(gw.buffer)[0][0]
    r = gw.cli("queue", "retry", str(first))
    assert r.returncode == 0 and "told to act on it now" in r.stdout, r.stdout + r.stderr
    # The first goes at once; the PACS being back, the other two follow without waiting.
    wait_until(lambda: orthanc.count() == 3, 60, what="all three delivered after the wake-up")
    wait_until(lambda: _states(gw) == ["done"] * 3, 30, what="all three jobs done")
    assert "reachable again" in gw.log


def test_reforward_after_the_pacs_lost_a_study_and_refusals(gateway_factory, orthanc_factory, tmp_path):
    port = free_port()
    orthanc = orthanc_factory(port)
    gw = gateway_factory({"destinations": {"pacs": {"ae_title": orthanc.aet, "port": orthanc.dicom,
                                                    "retry_initial_s": 0.5, "retry_max_s": 1.0}}}, port=port)
    files = make_series(tmp_path / "in", 3)
    _send(gw, files)
    wait_until(lambda: _states(gw) == ["done"] * 3, 60, what="delivered")
    study = str(pydicom.dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)
    done_id = jobs(gw.buffer)[0][0]

    # CLI cells of the table: retry / dead-letter of a delivered job are refused with the way out.
    r = gw.cli("queue", "retry", str(done_id))
    assert r.returncode == 1 and f"re-forward {done_id} --to pacs" in r.stdout and "Traceback" not in r.stderr
    r = gw.cli("queue", "dead-letter", str(done_id))
    assert r.returncode == 1 and "nothing to dead-letter" in r.stdout
    r = gw.cli("queue", "retry", "abc")
    assert r.returncode != 0 and r.stderr.count("\n") == 1 and "'abc' is not a job ID" in r.stderr

    # The PACS loses the study.
    for (oid,) in [(i,) for i in orthanc.get("/instances")]:
        urllib.request.urlopen(urllib.request.Request(
            f"http://127.0.0.1:{orthanc.http}/instances/{oid}", method="DELETE"), timeout=30).read()
    assert orthanc.count() == 0
    r = gw.cli("re-forward", "--study", study, "--to", "pacs")
    assert r.returncode == 0 and "3 objects queued for pacs" in r.stdout, r.stdout + r.stderr
    wait_until(lambda: orthanc.count() == 3, 60, what="the study delivered again")
    wait_until(lambda: _states(gw) == ["done"] * 6, 30, what="the new jobs done")

    # Refusals, each one line on stderr, no traceback.
    for args, text in [
        (("re-forward", "--study", study, "--to", "nowhere"), "unknown destination 'nowhere'"),
        (("re-forward", "--series", "1.2.3.4", "--to", "pacs"), "no series 1.2.3.4 in the buffer"),
        (("re-forward", "--to", "pacs"), "give job IDs, or one of"),
    ]:
        r = gw.cli(*args)
        assert r.returncode != 0 and text in r.stderr and r.stderr.count("\n") == 1, (args, r.stderr)
    # An object no longer held: refused with the reason.
    stored = next((gw.buffer / "objects").rglob("*.dcm"))
    stored.unlink()
    r = gw.cli("re-forward", *[str(j[0]) for j in jobs(gw.buffer)[:3]], "--to", "pacs")
    assert r.returncode == 1 and "no longer held" in r.stdout and "2 objects queued" in r.stdout


def test_identical_resend_requeues_a_dead_route(gateway_factory, orthanc_factory, tmp_path):
    port = free_port()
    orthanc = orthanc_factory(port)
    gw = gateway_factory({"destinations": {"pacs": {"ae_title": orthanc.aet, "port": orthanc.dicom,
                                                    "retry_initial_s": 0.5, "retry_max_s": 1.0,
                                                    "enabled": True}}}, port=port)
    orthanc.stop()  # down: the job waits; the operator gives up on it
    files = make_series(tmp_path / "in", 1)
    _send(gw, files)
    wait_until(lambda: "pacs unreachable" in gw.log, 30, what="PACS down noticed")
    (job_id, *_rest), = jobs(gw.buffer)
    wait_until(lambda: gw.cli("queue", "dead-letter", str(job_id)).returncode == 0, 30,
               what="the job dead-lettered between attempts")
    assert _states(gw) == ["dead"]
    orthanc.start()
    _send(gw, files)  # the modality sends it again, identical
    wait_until(lambda: _states(gw) == ["done"], 60, what="the dead route queued again and sent")
    assert orthanc.count() == 1
    assert "identical: queued again for pacs" in gw.log, gw.log[-2000:]


def test_print_job_cells_on_the_command_line(gateway_factory, imager, tmp_path):  # noqa: F811
    from test_print import print_config
    from test_print_pynetdicom import Client, gradient, gray_film

    imager.offline = True  # the film waits for the printer
    gw = gateway_factory({**print_config(imager.url),
                          "destinations": {"pacs": {"ae_title": "NOPACS", "port": free_port()}}})
    c = Client(gw.port)
    try:
        assert c.print_film_box(gray_film(c, gradient()))[0].Status == 0
    finally:
        c.close()
    wait_until(lambda: "printer not ready" in str(jobs(gw.buffer)), 30, what="the film waiting")
    (job_id, target, *_), = jobs(gw.buffer)
    assert target == "film"

    def cli(*args):
        r = gw.cli(*args)
        assert "Traceback" not in r.stderr, r.stderr
        return r

    # queued -> dead-letter -> retry: the film is queued again and prints once the printer is back.
    r = wait_until(lambda: (r := cli("queue", "dead-letter", str(job_id))).returncode == 0 and r, 30,
                   what="dead-lettered between attempts")
    assert "film 1 of print job" in r.stdout and _states(gw) == ["dead"]
    r = cli("queue", "retry", str(job_id))
    assert r.returncode == 0 and "queued again" in r.stdout
    imager.offline = False
    wait_until(lambda: _states(gw) == ["done"], 30, what="film printed")
    assert len(imager.printed) == 1
    # done: every verb refuses, with its reason.
    r = cli("queue", "retry", str(job_id))
    assert r.returncode == 1 and "not printed again from the queue" in r.stdout
    r = cli("queue", "dead-letter", str(job_id))
    assert r.returncode == 1 and "nothing to dead-letter" in r.stdout
    r = cli("re-forward", str(job_id), "--to", "pacs")
    assert r.returncode == 1 and "a print job" in r.stdout
    assert len(imager.printed) == 1
