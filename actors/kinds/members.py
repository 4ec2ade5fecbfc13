"""Members with roles, shared by chat rooms and playlists (a mixin).

A kind using it has ``owner`` and ``members`` (user -> role) in its state, lists its
``roles`` highest first, and says how a refusal names it (``not_member``); the mixin checks
membership and rank, and answers the presence mixin's questions (who may be present, who may
list, how many members, what names the entity in events). ``Entity`` checks at import that
the state has those fields.
"""

from __future__ import annotations

from typing import Any, ClassVar

from rthub.errors import Forbidden, NotFound


class Members:
    """Membership and roles; mixed into an ``Entity`` kind before ``Presence``."""

    __slots__ = ()
    state_needs: ClassVar[tuple[str, ...]] = ("owner", "members")
    roles: ClassVar[tuple[str, ...]]  # highest first: ("owner", "moderator", "member")
    not_member: ClassVar[str] = "{user} is not a member of {kind} {id!r}"
    state: Any
    key: tuple[str, str, str]
    kind: ClassVar[str]

    def _require_exists(self) -> None:
        if not self.state.owner:
            raise NotFound(f"{self.kind} {self.key[2]!r} does not exist")

    def _role(self, user: str) -> str:
        """``user``'s role, or ``not_found`` (no such entity) / ``forbidden`` (not a member)."""
        self._require_exists()
        role = self.state.members.get(user)
        if role is None:
            raise Forbidden(self.not_member.format(user=user, kind=self.kind, id=self.key[2]))
        return role

    def _at_least(self, user: str, role: str, refusal: str) -> str:
        """``user``'s role if it ranks at least ``role``; else ``forbidden`` with ``refusal``."""
        held = self._role(user)
        if self.roles.index(held) > self.roles.index(role):
            raise Forbidden(refusal)
        return held

    # -- what the presence mixin asks ------------------------------------------------------
    def _may_be_present(self, user: str) -> bool:
        return user in self.state.members

    def _require_reader(self, user: str) -> str:
        return self._role(user)

    def _member_count(self) -> int:
        return len(self.state.members)

    def _scope(self) -> dict[str, str]:
        return {self.channel.id_field: self.key[2]}
