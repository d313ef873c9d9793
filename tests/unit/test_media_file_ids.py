"""File IDs (PS3.10 8.2): the rules refuse with one line, the scheme is conformant and collision-free."""

from __future__ import annotations

import pytest

from gateway.media.file_ids import (
    FileIdAllocator,
    FileIdError,
    check_file_id,
    file_id_path,
    instance_file_id,
    parse_file_id,
)


@pytest.mark.parametrize("components, words", [
    ((), "no component"),
    (("A",) * 9, "9 components"),
    (("DICOM", "ABCDEFGHI"), "9 characters"),
    (("DICOM", "img1"), "'i'"),
    (("DICOM", "IM.DCM"), "'.'"),
    (("DICOM", ""), "empty component"),
    (("DICOM", "A B"), "' '"),
    ("DICOM/IM1", "components, not one string"),
])
def test_a_non_conformant_file_id_is_refused_with_one_line(components, words):
    with pytest.raises(FileIdError) as err:
        check_file_id(components)
    message = str(err.value)
    assert words in message and "\n" not in message


def test_conformant_ids_pass_and_parse_both_separators():
    check_file_id(("A",) * 8)
    check_file_id(("ABCDEFGH", "_0_9_Z"))
    assert parse_file_id("DICOM\\P0000001") == ("DICOM", "P0000001")
    assert parse_file_id("DICOM/P0000001") == ("DICOM", "P0000001")
    with pytest.raises(FileIdError):
        parse_file_id("dicom/p1")


def test_instance_file_id_is_the_counter_scheme():
    assert file_id_path(instance_file_id(1, 2, 3, 4)) == "DICOM/P0000001/S0000002/S0000003/I0000004"
    with pytest.raises(FileIdError, match="outside"):
        instance_file_id(1, 1, 1, 10_000_000)
    with pytest.raises(FileIdError, match="outside"):
        instance_file_id(0, 1, 1, 1)


def test_the_allocator_is_collision_free_deterministic_and_meaningless():
    keys = [(p, s, r) for p in ("PAT A", "pat/b") for s in ("1.2", "1.3") for r in ("9", "8")
            for _ in range(3)]
    first, second = FileIdAllocator(), FileIdAllocator()
    ids = [first.allocate(*k) for k in keys]
    assert ids == [second.allocate(*k) for k in keys]
    assert len(set(ids)) == len(ids)
    for components in ids:
        check_file_id(components)
        assert not any("PAT" in c for c in components)  # nothing taken from the keys
    # Each level counts within its parent: the second patient's first study is S0000001 again.
    assert ids[12] == ("DICOM", "P0000002", "S0000001", "S0000001", "I0000001")
    assert ids[5] == ("DICOM", "P0000001", "S0000001", "S0000002", "I0000003")
