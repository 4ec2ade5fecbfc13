"""Leave-one-out by time, the split every model is trained and judged on.

Of each user's positive sequence (``ml.data.sequences``, oldest first) the last item is the
test target and the one before it the validation target; everything earlier is training.
A user with fewer than 3 positives has nothing to spare: all of it is training, and the user
is in neither evaluation. Validation asks "given the training items, what comes next?";
test asks the same with the validation item appended to the history, so no model ever sees
a user's own targets. The known trade-off of leave-one-out: training holds other users'
listens from after someone's test time (a global time cut avoids that, but leaves out every
user with nothing after the cut and tests on far fewer).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Case:
    user: str
    history: list[str]  # oldest first
    target: str


@dataclass(frozen=True, slots=True)
class Split:
    train: dict[str, list[str]] = field(default_factory=dict)
    valid: list[Case] = field(default_factory=list)
    test: list[Case] = field(default_factory=list)


def leave_one_out(sequences: dict[str, list[str]], min_positives: int = 3) -> Split:
    """Users in sorted order, so the split is the same whatever order the data came in."""
    split = Split()
    for user in sorted(sequences):
        items = sequences[user]
        if len(items) < min_positives:
            split.train[user] = list(items)
            continue
        split.train[user] = items[:-2]
        split.valid.append(Case(user, items[:-2], items[-2]))
        split.test.append(Case(user, items[:-1], items[-1]))
    return split
