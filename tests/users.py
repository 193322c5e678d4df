"""Test users: a fresh email, its stable user id and a development access token; the password
accounts of the suites sign up with."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field

from deploy.local.ephemeral import Mesh
from services.common.devkeys import user_id_for

# Accepted by identity: 8-128 characters and not one of the common passwords.
PASSWORD = "violet-kettle-harbour"


@dataclass(frozen=True)
class User:
    email: str
    token: str = field(repr=False)

    @property
    def user_id(self) -> str:
        return user_id_for(self.email)

    @property
    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token}"}

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token}"),)


def new_user(mesh: Mesh, prefix: str = "user") -> User:
    email = f"{prefix}-{uuid.uuid4().hex[:12]}@example.com"
    return User(email, mesh.token(email))


def rest_violations(body: dict) -> list[str]:
    """The fields named by the google.rpc.BadRequest of a REST error body."""
    return [
        v["field"]
        for d in body.get("details", [])
        if d.get("@type", "").endswith("/google.rpc.BadRequest")
        for v in d.get("fieldViolations", [])
    ]


def json_name(path: str) -> str:
    """A proto field path as REST callers read it: each name in lowerCamelCase, the proto3 JSON
    mapping's rule ("profile.years_experience" -> "profile.yearsExperience")."""
    return re.sub(r"_([a-z0-9])", lambda m: m.group(1).upper(), path)
