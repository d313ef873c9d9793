"""The file-set creator's memory is flat in the number of instances (issue 8: peak RSS flat and
<= 120 MB at 4,000): a plan keeps each record as its encoded keys and little else, and the DICOMDIR
is streamed to the medium, not built as a second copy. Measured with tracemalloc (Python's own
allocations, deterministic), never with a clock: the bench reports the times."""

from __future__ import annotations

import gc
import tracemalloc
from pathlib import Path

from datasets import make_ct
from pydicom.uid import generate_uid

from gateway.media.fileset import materialize, plan_fileset

# Bytes a planned-and-written instance may add to the peak: its PlannedFile, File ID, SOP Instance
# UID, IMAGE record keys (~250 B) and its mapping entry come to ~1.1 KB; a plan that kept each
# record as a pydicom Dataset took ~3.2 KB, one that built the DICOMDIR as copies more at the write.
PER_INSTANCE_LIMIT = 1600


def _instances(folder: Path, n: int) -> list[Path]:
    folder.mkdir()
    studies = [generate_uid() for _ in range(4)]
    series = [generate_uid() for _ in range(4)]
    out = []
    for i in range(n):
        path = folder / f"i{i}.dcm"
        make_ct(path, study_uid=studies[i % 4], series_uid=series[i % 4], number=i + 1, rows=8, cols=8,
                patient_id=f"PID-{i % 4}", seed=0)
        out.append(path)
    return out


def _peak_of_export(files: list[Path], dest: Path) -> int:
    """Peak bytes Python allocated while planning and laying out files, above what was held before."""
    plan_fileset(files[:2], "STD-GEN-CD", "WARM")  # lazy imports and caches are not the plan's
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        plan = plan_fileset(files, "STD-GEN-CD", "MEM")
        materialize(plan, dest)
        assert not plan.left_out and len(plan.files) == len(files)
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def test_planning_and_writing_a_file_set_takes_little_memory_per_instance(tmp_path):
    small, large = 50, 400
    files = _instances(tmp_path / "src", large)
    peak_small = _peak_of_export(files[:small], tmp_path / "small")
    peak_large = _peak_of_export(files, tmp_path / "large")
    per_instance = (peak_large - peak_small) / (large - small)
    assert per_instance <= PER_INSTANCE_LIMIT, \
        f"{per_instance:.0f} bytes per instance (peaks {peak_small} at {small}, {peak_large} at {large})"
