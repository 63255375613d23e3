"""Who is acting: a logged-in user, a token holder, or the system itself (CLI, demo, jobs)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import Forbidden


@dataclass(frozen=True)
class Actor:
    user_id: int | None
    username: str
    role: str
    department_id: int | None = None
    permissions: frozenset[str] = field(default_factory=frozenset)
    via: str = "system"  # session | token | system

    @property
    def label(self) -> str:
        return self.username if self.user_id is None else f"{self.username}#{self.user_id}"

    def can(self, permission: str) -> bool:
        return permission in self.permissions

    def check(self, permission: str) -> None:
        if not self.can(permission):
            raise Forbidden(f"permission {permission!r} is required", permission=permission)

    @property
    def sees_all_departments(self) -> bool:
        return self.role in ("admin", "leader") or self.via == "system"

    def check_department(self, department_id: int | None) -> None:
        """Department staff see and act on their own department's work only."""
        if self.sees_all_departments:
            return
        if department_id is None or department_id != self.department_id:
            raise Forbidden("this belongs to another department")


def system_actor(name: str = "system") -> Actor:
    from .permissions import ALL_PERMISSIONS

    return Actor(user_id=None, username=name, role="admin", permissions=ALL_PERMISSIONS)
