"""Item ids <-> row numbers 0..n-1, the one mapping every model, the evaluation and the
artifact's ``items.json`` share. Ids are sorted, so the same catalogue gives the same rows."""

from __future__ import annotations

from collections.abc import Iterable


class Vocab:
    def __init__(self, items: Iterable[str]) -> None:
        self.items: list[str] = sorted(set(items))
        self.index: dict[str, int] = {item: n for n, item in enumerate(self.items)}

    def __len__(self) -> int:
        return len(self.items)

    @classmethod
    def of(cls, sequences: dict[str, list[str]]) -> Vocab:
        """Every item any user has a positive for (training, validation or test: a target no
        model has trained on is still ranked, as it is in a real catalogue)."""
        return cls(item for items in sequences.values() for item in items)

    def encode(self, items: Iterable[str]) -> list[int]:
        """Rows of the known items, unknown ids dropped (a track newer than the model)."""
        return [self.index[i] for i in items if i in self.index]
