"""Defence in depth for the database: each service connects as a login role of its own that is
only a member of its app role (deploy/db_roles.py). Row-level security then holds even for code
that misbehaves: RESET ROLE leads to no privilege, SET ROLE to the owner is refused, and nothing
bypasses RLS. Read from what the running service processes were really given (DATABASE_URL in
their environment)."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from deploy.local.ephemeral import Mesh
from tests.users import new_user

pytestmark = pytest.mark.timeout(60)
SERVICES_WITH_A_DATABASE = ("identity", "profile", "enrichment", "messaging")


def _process_database_url(mesh: Mesh, service: str) -> str:
    """DATABASE_URL as the running service process got it."""
    environ = Path(f"/proc/{mesh.processes[service].pid}/environ").read_bytes().split(b"\0")
    found = dict(entry.decode().split("=", 1) for entry in environ if b"=" in entry)
    return found["DATABASE_URL"]


@pytest.mark.parametrize("service", SERVICES_WITH_A_DATABASE)
async def test_a_service_connects_as_a_role_without_power(mesh: Mesh, service: str) -> None:
    connection = await asyncpg.connect(_process_database_url(mesh, service))
    try:
        role = await connection.fetchrow(
            "SELECT rolname, rolsuper, rolbypassrls, rolcreaterole, rolcreatedb FROM pg_roles"
            " WHERE rolname = current_user"
        )
        assert not any(role[k] for k in ("rolsuper", "rolbypassrls", "rolcreaterole", "rolcreatedb")), dict(role)
        owner = await connection.fetchval(
            "SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = $1", service
        )
        assert owner != role["rolname"], "the service must not own its schema"
        # Its only membership is its app role.
        memberships = await connection.fetch(
            "SELECT r.rolname FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid "
            "WHERE m.member = (SELECT oid FROM pg_roles WHERE rolname = current_user)"
        )
        assert [m["rolname"] for m in memberships] == [f"{service}_app"]
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await connection.execute(f'SET ROLE "{owner}"')
        await connection.execute("RESET ROLE")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await connection.fetchval(f"SELECT count(*) FROM {service}.outbox")
    finally:
        await connection.close()


async def test_the_profile_services_connection_cannot_read_another_users_private_rows(mesh: Mesh, rest) -> None:
    owner, stranger = new_user(mesh, "private-owner"), new_user(mesh, "stranger")
    created = await rest.post(
        "/v1/profiles", json={"displayName": "Hidden", "visibility": "VISIBILITY_PRIVATE"}, headers=owner.headers
    )
    assert created.status_code == 200, created.text
    connection = await asyncpg.connect(_process_database_url(mesh, "profile"))
    try:
        for statement in ("RESET ROLE", "SET ROLE profile_app"):
            async with connection.transaction():
                try:
                    await connection.execute(statement)
                    await connection.execute("SELECT set_config('app.user_id', $1, true)", stranger.user_id)
                    seen = await connection.fetchval(
                        "SELECT count(*) FROM profile.profiles WHERE user_id = $1", owner.user_id
                    )
                except asyncpg.InsufficientPrivilegeError:
                    seen = 0
            assert seen == 0, statement
    finally:
        await connection.close()
