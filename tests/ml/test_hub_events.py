"""``rthub ml train --hub``: the listening events the journal wrote (a real PostgreSQL) become
the training data, and the artifact lands where ``rthub up`` serves from."""

from __future__ import annotations

import asyncio
import json

import pytest

from rthub.cli import main
from storage import listening
from storage.postgres import open_pool


async def write_events(pg_url: str) -> list:
    pool = await open_pool(pg_url, 2)
    rows = [{"tenant": "ml", "user": f"u{u}", "track": f"t{(u + n) % 12}", "event": "play",
             "position_ms": 0, "context": "party:p", "at_ms": 1_700_000_000_000 + n * 1000}
            for u in range(40) for n in range(6)]
    rows.append({"tenant": "other", "user": "x", "track": "elsewhere", "event": "play",
                 "position_ms": 0, "context": "party:q", "at_ms": 1_700_000_000_000})
    async with pool.acquire() as conn:
        await conn.execute("DELETE FROM listening_events WHERE tenant IN ('ml', 'other')")
        await listening.record(conn, rows)
    try:
        return await listening.export(pool, "ml")
    finally:
        await pool.close()


def test_the_hubs_own_events_train_a_model(pg_url, tmp_path, monkeypatch, capsys):
    exported = asyncio.run(write_events(pg_url))  # (the command runs its own event loop)
    assert len(exported) == 240
    assert exported[0][3] == "play"
    monkeypatch.setenv("POSTGRES_URL", pg_url)
    monkeypatch.setenv("RTHUB_MODELS_DIR", str(tmp_path))
    with pytest.raises(SystemExit) as done:
        main(["ml", "train", "--hub", "--tenant", "ml", "--quick", "--version", "v1"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "the hub's listening events (ml)" in out
    config = json.loads((tmp_path / "music" / "v1" / "config.json").read_text())
    assert (config["data"]["events"], config["data"]["items"]) == (240, 12)  # not 'other'


def test_without_a_database_the_hub_source_says_what_it_needs(tmp_path, monkeypatch):
    monkeypatch.delenv("POSTGRES_URL", raising=False)
    monkeypatch.setenv("RTHUB_MODELS_DIR", str(tmp_path))
    with pytest.raises(SystemExit) as done:
        main(["ml", "train", "--hub"])
    assert done.value.code == ("rthub: ml train --hub reads POSTGRES_URL (the hub's "
                               "database); set it, or train from --events FILE.csv")
