"""Fuzzing the frame decoder and every routed message type in-process (no Ray, Redis or
Postgres): any client frame is answered, with an ``ack`` or an ``error`` whose code is one
of PROTOCOL.md's (never ``internal``), and nothing the hub would send or store breaks.

The property and strategies are ``tests.fuzz.harness``'s; this suite runs them bounded
(about 7,000 frames, seconds, derandomized so a failure repeats). ``python -m benchmarks.fuzz
--frames 100000`` runs the same properties, randomly, for at least 100,000 frames.
"""

from __future__ import annotations

from collections.abc import Callable

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rthub.errors import BadRequest, TooLarge
from serve import protocol
from tests.fuzz import harness
from tests.fuzz.harness import EXAMPLES, FrameCase, check_decode, check_frame

ENVELOPE_EXAMPLES = 1000
PAYLOAD_EXAMPLES = 50  # per message type


@settings(max_examples=ENVELOPE_EXAMPLES, derandomize=True, database=None,
          **harness.SETTINGS_KWARGS)
@given(harness.envelope_cases())
def test_any_frame_is_answered_with_a_protocol_code(case: FrameCase) -> None:
    check_frame(case)


def payload_test(message_type: str, max_examples: int) -> Callable[[], None]:
    """The payload property of one message type as a Hypothesis test (one per type, built
    from the router's list: pytest cannot parametrize ``@given``'s strategy)."""
    @settings(max_examples=max_examples, derandomize=True, database=None,
              **harness.SETTINGS_KWARGS)
    @given(harness.payload_cases(message_type))
    def run(case: FrameCase) -> None:
        check_frame(case)

    return run


@pytest.mark.parametrize("message_type", harness.routed_types())
def test_every_message_type_survives_fuzzed_payloads(message_type: str) -> None:
    payload_test(message_type, PAYLOAD_EXAMPLES)()


def test_every_routed_type_has_a_valid_example_and_it_is_acked() -> None:
    """A new route fails here until EXAMPLES has a request of it (then it is fuzzed too)."""
    routed = set(harness.routed_types())
    assert not routed - set(EXAMPLES), f"no valid example of {sorted(routed - set(EXAMPLES))}"
    assert not set(EXAMPLES) - routed, f"examples of unrouted {sorted(set(EXAMPLES) - routed)}"
    for message_type in sorted(routed):
        for encoding in harness.ENCODINGS:
            frame = {"type": message_type, "id": 1, "content": EXAMPLES[message_type]}
            case = FrameCase(message_type, harness.serialize(frame, encoding, True), encoding)
            assert check_frame(case) == "ack", (message_type, encoding)


# Values a field of any type may be given that the hub must refuse before they reach storage
# or other clients: NUL (PostgreSQL refuses it), past bigint, and in msgpack what JSON cannot
# carry (sent to JSON clients in broadcasts).
HOSTILE = {protocol.JSON: ["a\x00b", 2**63, 2**64 - 1],
           protocol.MSGPACK: ["a\x00b", 2**63, b"\x00bytes", msgpack.ExtType(5, b"x"),
                              {b"k": 1}, float("nan")]}


@pytest.mark.parametrize("message_type", harness.routed_types())
def test_every_field_of_every_type_refuses_hostile_values(message_type: str) -> None:
    """Each field of each type's valid example, in turn, given each hostile value (and the
    same inside a list and an object): never an internal error, never a bad value stored
    or broadcast."""
    example = EXAMPLES[message_type]
    for encoding, values in HOSTILE.items():
        for field in [*example, "extra"]:
            for value in values:
                for wrapped in (value, [value], {"k": value}):
                    content = {**example, field: wrapped}
                    data = harness.serialize({"type": message_type, "id": 1,
                                              "content": content}, encoding, False)
                    check_frame(FrameCase(message_type, data, encoding))


@pytest.mark.parametrize("field", harness.ENVELOPE_FIELDS)
@pytest.mark.parametrize("encoding", harness.ENCODINGS)
def test_a_wrong_type_in_any_envelope_field_is_bad_request(field: str, encoding: str) -> None:
    """Server-only fields are refused whatever their value; the client's are type checked
    (``timestamp`` is not: the hub ignores a client's clock)."""
    wrong = {"type": [1, None, 7, "Chat.Send", "x" * 65, ""],
             "id": [None, 1.5, True, [1], "x" * 65], "topic": [1, [], {}],
             "content": [[], "x", 1, None], "ref": ["x"], "seq": [1], "epoch": ["e"],
             "timestamp": []}[field]
    for value in wrong:
        frame = {"type": "ping", "id": 3, "content": {}, field: value}
        if field == "id" and value is None:
            continue  # no id is fine
        data = harness.serialize(frame, encoding, True)
        found = check_decode(data, encoding)
        assert isinstance(found, BadRequest), (field, value, found)
        assert check_frame(FrameCase("envelope", data, encoding)) == "malformed:bad_request"


@pytest.mark.parametrize("encoding", harness.ENCODINGS)
def test_the_size_limit_is_exact(encoding: str) -> None:
    frame = {"type": "ping", "content": {"pad": ""}}
    base = len(harness.serialize(frame, encoding, False))
    for size in (harness.MAX_BYTES - 1, harness.MAX_BYTES, harness.MAX_BYTES + 1):
        frame["content"]["pad"] = "x" * (size - base)
        data = harness.serialize(frame, encoding, False)
        found = check_decode(data, encoding)
        assert isinstance(found, TooLarge) == (len(data) > harness.MAX_BYTES), size


@given(st.integers(1, 5000), st.booleans(), st.sampled_from(harness.ENCODINGS),
       st.sampled_from(sorted(EXAMPLES)))
@settings(max_examples=60, derandomize=True, database=None, **harness.SETTINGS_KWARGS)
def test_deep_nesting_is_refused_or_decoded_never_a_crash(depth: int, as_dict: bool,
                                                         encoding: str, kind: str) -> None:
    """Nested past what either encoder writes (255 / 511 levels) and either decoder reads."""
    content = {**EXAMPLES[kind], "deep": harness.Deep(depth, 0, as_dict)}
    data = harness.serialize({"type": kind, "id": 1, "content": content}, encoding, True)
    check_frame(FrameCase("envelope:deep", data, encoding))


def test_a_msgpack_frame_with_bytes_and_str_keys_is_bad_request() -> None:
    """Found by this fuzzer: unknown keys of both kinds made ``sorted`` raise TypeError."""
    data = msgpack.packb({"type": "ping", b"x": 1, "y": 2}, use_bin_type=True)
    assert check_frame(FrameCase("envelope", data, protocol.MSGPACK)) == "malformed:bad_request"
