"""Join codes: typed back as read aloud, refused when mistyped or stale."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mediator_desktop.core.cluster import JoinCode, cluster_id_of
from mediator_desktop.core.errors import ValidationError

codes = st.builds(
    JoinCode,
    st.ip_addresses(v=4).map(str),
    st.integers(0, 65535),
    st.integers(0, 2**32 - 1).map(lambda m: m * 60),
    st.binary(min_size=6, max_size=6),
)


@given(codes)
def test_a_code_reads_back_as_written(code: JoinCode) -> None:
    text = code.text()
    assert len(text) == 34 and text.count("-") == 5
    assert JoinCode.parse(text) == code
    assert JoinCode.parse(text.lower().replace("-", " ")) == code
    assert JoinCode.parse(text.replace("1", "I").replace("0", "O")) == code


@given(codes, st.integers(0, 28), st.sampled_from("0123456789ABCDEFGHJKMNPQRSTVWXYZ"))
def test_a_mistyped_character_is_caught(code: JoinCode, where: int, typed: str) -> None:
    digits = code.text().replace("-", "")
    if digits[where] == typed:
        return
    wrong = digits[:where] + typed + digits[where + 1 :]
    try:
        parsed = JoinCode.parse(wrong)
    except ValidationError:
        return
    # a one-byte check catches all but about 1 in 256 typos; never silently the same code
    assert parsed != code


def test_bad_codes_say_what_is_wrong() -> None:
    code = JoinCode.new("192.0.2.7", 4100, ttl=600, now=1_000_000)
    assert not code.expired(now=1_000_000) and code.expired(now=1_000_000 + 720)
    for text, message in (
        ("", "letters"),
        ("ABC*", "letters"),
        ("ABCDE", "too short"),
        (code.text() + "Q", "long"),
    ):
        with pytest.raises(ValidationError, match=message):
            JoinCode.parse(text)
    with pytest.raises(ValidationError, match="IPv4"):
        JoinCode("::1", 1, 60, b"123456").text()
    assert cluster_id_of("a") != cluster_id_of("b") and "a" not in cluster_id_of("a")
