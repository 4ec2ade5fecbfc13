"""Listeners by name: ``on`` returns the function that removes the listener again."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


class Emitter:
    """Named listeners; a listener that raises is logged and never stops the others."""

    def __init__(self) -> None:
        self._listeners: dict[str, list[Callable[..., Any]]] = {}

    def on(self, name: str, fn: Callable[..., Any]) -> Callable[[], None]:
        self._listeners.setdefault(name, []).append(fn)

        def off() -> None:
            listeners = self._listeners.get(name, [])
            if fn in listeners:
                listeners.remove(fn)

        return off

    def emit(self, name: str, *args: Any) -> None:
        for fn in list(self._listeners.get(name, ())):
            try:
                fn(*args)
            except Exception:
                log.exception("listener of %r failed", name)
