import base64
import os

import pytest

from drivers.printer.ascii85 import ascii85_encode


@pytest.mark.parametrize("data", [b"", b"a", b"abcd", b"\0\0\0\0abc", b"\0\0", b"\0" * 8,
                                  os.urandom(4001) + b"\0" * 9])
def test_same_text_as_stdlib(data):
    ours = ascii85_encode(data, line_length=0)
    assert ours == base64.a85encode(data) + b"~>"
    wrapped = ascii85_encode(data, line_length=20)
    assert max(len(line) for line in wrapped.split(b"\n")) <= 22
    assert base64.a85decode(b"<~" + wrapped.replace(b"\n", b""), adobe=True) == data
