"""The entity contract, checked without Ray: declarations, decoding, dispatch."""

from dataclasses import dataclass
from typing import ClassVar

import pytest

from actors import Context, Entity, Event, Message, applies, handles
from rthub import config
from rthub.errors import BadRequest


@dataclass(frozen=True, slots=True)
class Add(Message):
    type: ClassVar[str] = "counter.add"
    amount: int
    note: str | None = None


@dataclass(frozen=True, slots=True)
class Added(Event):
    amount: int


def test_a_kind_that_forgets_a_handler_fails_when_it_is_defined():
    with pytest.raises(TypeError, match=r"declares Add \('counter.add'\) but has no @handles"):
        class Forgetful(Entity):
            kind = "forgetful"
            messages = (Add,)


def test_a_kind_that_forgets_an_applier_fails_when_it_is_defined():
    with pytest.raises(TypeError, match="declares event Added but has no @applies"):
        class Forgetful(Entity):
            kind = "forgetful"
            events = (Added,)


def test_a_handler_for_an_undeclared_message_fails_when_it_is_defined():
    with pytest.raises(TypeError, match="handles undeclared Add"):
        class Sloppy(Entity):
            kind = "sloppy"

            @handles(Add)
            def add(self, msg, ctx):
                pass


@pytest.mark.parametrize(("payload", "error"), [
    ({}, "Add: missing field 'amount'"),
    ({"amount": "3"}, "Add: field 'amount' has the wrong type"),
    ({"amount": True}, "Add: field 'amount' has the wrong type"),
    ({"amount": 3, "extra": 1}, "Add: unknown field 'extra'"),
    ({"amount": 3, "note": 7}, "Add: field 'note' has the wrong type"),
    ([1, 2], "Add: content must be an object"),
])
def test_untrusted_payloads_are_checked_before_any_handler_runs(payload, error):
    with pytest.raises(BadRequest) as caught:
        Add.decode(payload)
    assert caught.value.message == error


class Counter(Entity):
    kind = "counter"
    messages = (Add,)
    events = (Added,)

    @dataclass(slots=True)
    class State:
        total: int = 0

    @handles(Add)
    def add(self, msg: Add, ctx: Context) -> None:
        if msg.amount < 0:
            raise BadRequest("amount must not be negative")
        ctx.emit(Added(msg.amount))
        ctx.reply({"total": self.state.total + msg.amount})

    @applies(Added)
    def _added(self, ev: Added) -> None:
        self.state.total += ev.amount


def test_handlers_record_effects_and_leave_state_to_the_appliers():
    entity = Counter(("t", "counter", "c1"))
    ctx = Context(entity.key, 0, config.load({}))
    entity.handle("counter.add", {"amount": 2}, ctx)
    assert ctx.events == [Added(2)]
    assert ctx.reply_content == {"total": 2}
    assert entity.state.total == 0  # the runtime applies after persisting
    for event in ctx.events:
        entity.apply(event)
    assert entity.state.total == 2


def test_snapshot_and_restore_round_trip():
    entity = Counter(("t", "counter", "c1"))
    entity.apply(Added(5))
    restored = Counter.restore(entity.key, entity.snapshot())
    assert restored.state == entity.state


def test_an_unknown_message_type_is_a_bad_request():
    entity = Counter(("t", "counter", "c1"))
    with pytest.raises(BadRequest, match=r"counter does not accept 'counter\.nope'"):
        entity.handle("counter.nope", {}, Context(entity.key, 0, config.load({})))
