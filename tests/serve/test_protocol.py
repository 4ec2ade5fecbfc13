"""Frame helpers that every frame goes through."""

from datetime import UTC, datetime

import pytest

from serve.protocol import timestamp


@pytest.mark.parametrize("ms", [0, 999, 1_000, 1_733_112_000_123, 1_733_112_000_999,
                                1_733_112_001_000, 1_733_112_000_500, 4_102_444_799_999])
def test_timestamps_are_rfc3339_utc_with_milliseconds(ms):
    expected = datetime.fromtimestamp(ms // 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    assert timestamp(ms) == f"{expected}.{ms % 1000:03d}Z"


def test_the_reused_second_never_leaks_into_another_one():
    assert timestamp(1_733_112_000_999) == "2024-12-02T04:00:00.999Z"
    assert timestamp(1_733_112_001_001) == "2024-12-02T04:00:01.001Z"
    assert timestamp(1_733_112_000_001) == "2024-12-02T04:00:00.001Z"  # back again
    assert timestamp().endswith("Z")
