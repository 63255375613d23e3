"""Request and response models for departments, users and tokens."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from citybrain.core.permissions import Role

CODE_PATTERN = r"^[a-z0-9][a-z0-9_-]{1,31}$"
USERNAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{2,63}$"


class DepartmentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    code: str = Field(pattern=CODE_PATTERN)
    name: str = Field(min_length=2, max_length=100)
    kind: str = Field(default="bureau", pattern=r"^(bureau|township|other)$")
    division_code: str | None = Field(default=None, pattern=r"^\d{12}$")
    description: str = Field(default="", max_length=2000)


class DepartmentUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    name: str | None = Field(default=None, min_length=2, max_length=100)
    kind: str | None = Field(default=None, pattern=r"^(bureau|township|other)$")
    division_code: str | None = Field(default=None, pattern=r"^\d{12}$")
    description: str | None = Field(default=None, max_length=2000)
    active: bool | None = None


class DepartmentRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    code: str
    name: str
    kind: str
    division_code: str | None
    description: str
    active: bool


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    username: str = Field(pattern=USERNAME_PATTERN)
    password: str = Field(min_length=1, max_length=256)
    role: Role
    department: str | None = Field(default=None, description="department code")
    display_name: str = Field(default="", max_length=100)


class UserUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    display_name: str | None = Field(default=None, max_length=100)
    role: Role | None = None
    department: str | None = Field(default=None, description="department code; empty string clears")
    active: bool | None = None
    password: str | None = Field(default=None, max_length=256)


class UserRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    username: str
    display_name: str
    role: str
    department_id: int | None
    department_code: str | None = None
    active: bool
    created_at: datetime
    last_login_at: datetime | None


class TokenRead(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_at: datetime
    scope: str


class Me(BaseModel):
    id: int | None
    username: str
    role: str
    department_id: int | None
    permissions: list[str]
    via: str
