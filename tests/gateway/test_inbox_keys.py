"""`clawdesk tenant key create|revoke` and the keys it makes, against real Postgres."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from typer.testing import CliRunner

from clawdesk.cli import cli
from clawdesk.storage import apikeys, db

runner = CliRunner()


@pytest.fixture
def database(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    from clawdesk.settings import connection_settings

    monkeypatch.setenv("DATABASE_URL", database_url)
    connection_settings.cache_clear()
    yield database_url
    connection_settings.cache_clear()


async def test_created_key_signs_in_and_only_its_hash_is_stored(database: str) -> None:
    result = runner.invoke(cli, ["tenant", "key", "create", "--tenant", "demo", "--name", "alice"])

    assert result.exit_code == 0, result.output
    key = result.stdout.strip().splitlines()[-1]
    assert key.startswith("cdk_") and len(key) > 40
    with psycopg.connect(database) as conn:
        stored = conn.execute("SELECT name, key_hash FROM tenant_api_keys").fetchall()
    assert stored == [("alice", apikeys.key_hash(key))]
    pool = await db.open_pool(database)
    try:
        agent = await apikeys.authenticate(pool, key)
        assert agent is not None
        assert (agent.tenant_id, agent.name) == ("demo", "alice")
        assert await apikeys.authenticate(pool, key + "x") is None
    finally:
        await pool.close()


def test_unknown_tenant_is_refused(database: str) -> None:
    result = runner.invoke(cli, ["tenant", "key", "create", "--tenant", "nobody"])
    assert result.exit_code == 2
    assert "unknown tenant" in result.output


def test_revoke_names_how_many_keys_it_revoked(database: str) -> None:
    apikeys.create_key(database, "demo", "alice")
    apikeys.create_key(database, "demo", "alice")
    result = runner.invoke(cli, ["tenant", "key", "revoke", "--tenant", "demo", "--name", "alice"])
    assert result.exit_code == 0
    assert "revoked 2 key(s)" in result.output
    again = runner.invoke(cli, ["tenant", "key", "revoke", "--tenant", "demo", "--name", "alice"])
    assert again.exit_code == 1


def test_replacing_a_key_revokes_the_old_one(database: str) -> None:
    old = apikeys.create_key(database, "demo", "demo (clawdesk up)")
    new = apikeys.create_key(database, "demo", "demo (clawdesk up)", replace=True)
    with psycopg.connect(database) as conn:
        live = conn.execute(
            "SELECT key_hash FROM tenant_api_keys WHERE revoked_at IS NULL"
        ).fetchall()
    assert live == [(apikeys.key_hash(new),)]
    assert old != new
