"""Profile migration 0005: skills stored with the taxonomy's short category id ("data_ml") carry
the contract's SkillCategory name afterwards, custom skills stay without one, the table still
forces RLS, and the downgrade restores the short ids. Run in a transaction that is rolled back."""

from __future__ import annotations

import importlib.util
import uuid

from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, text

from deploy.local.ephemeral import Mesh
from services.common.migrations import sync_url
from services.common.settings import REPO_ROOT

MIGRATION = REPO_ROOT / "services" / "profile" / "migrations" / "versions" / "0005_skill_category_names.py"


def _migration():
    spec = importlib.util.spec_from_file_location("profile_0005", MIGRATION)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_stored_categories_become_enum_names_and_back(mesh: Mesh) -> None:
    migration = _migration()
    engine = create_engine(sync_url(mesh.config.database_url))
    user = uuid.uuid4()
    categories = {"py": "data_ml", "k8s": "engineering", "custom": "", "new": "SKILL_CATEGORY_SALES"}
    try:
        with engine.connect() as connection, connection.begin() as transaction:
            profile = connection.execute(
                text("INSERT INTO profile.profiles (user_id, display_name) VALUES (:u, 'M') RETURNING profile_id"),
                {"u": user},
            ).scalar_one()
            for key, category in categories.items():
                connection.execute(
                    text(
                        "INSERT INTO profile.skills (profile_id, user_id, skill_key, name, category, proficiency)"
                        " VALUES (:p, :u, :k, :k, :c, 3)"
                    ),
                    {"p": profile, "u": user, "k": key, "c": category},
                )

            def stored() -> dict[str, str]:
                rows = connection.execute(
                    text("SELECT skill_key, category FROM profile.skills WHERE user_id = :u"), {"u": user}
                )
                return dict(rows.all())

            def forced() -> bool:
                return connection.execute(
                    text("SELECT relforcerowsecurity FROM pg_class WHERE oid = 'profile.skills'::regclass")
                ).scalar_one()

            with Operations.context(MigrationContext.configure(connection)):
                migration.upgrade()
                assert stored() == {
                    "py": "SKILL_CATEGORY_DATA_ML",
                    "k8s": "SKILL_CATEGORY_ENGINEERING",
                    "custom": "",
                    "new": "SKILL_CATEGORY_SALES",
                }
                assert forced()
                migration.downgrade()
                assert stored() == {"py": "data_ml", "k8s": "engineering", "custom": "", "new": "sales"}
                assert forced()
            transaction.rollback()
    finally:
        engine.dispose()
