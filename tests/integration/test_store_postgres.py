"""The run store on a real PostgreSQL server (Debian's postgresql, started on loopback by the test):
the same scenarios as on SQLite, and a real recorded run from the CLI."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import new_experiment, repropack
from tests.integration.services import postgres_server
from tests.store_scenarios import SCENARIOS


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with postgres_server() as url:
        yield url


@pytest.fixture
def database(server: str) -> Iterator[str]:
    """An empty database of its own for each test, on the shared server."""
    import psycopg

    name = f"t{os.getpid()}_{os.urandom(4).hex()}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield server.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__.removeprefix("scenario_"))
def test_postgres_store(scenario: Callable[[str, Path], None], database: str, tmp_path: Path) -> None:
    scenario(database, tmp_path / "blobs")


def test_a_password_or_an_unreachable_server_is_a_clear_exit_3(tmp_path: Path) -> None:
    env = {"REPROPACK_STORE": "postgresql://lab:s3cret@127.0.0.1:9/runs", "REPROPACK_STORE_BLOBS": str(tmp_path)}
    result = repropack("runs", env=env)
    assert result.code == 3 and "cannot be reached" in result.stderr
    assert "s3cret" not in result.stderr and "Traceback" not in result.stderr


@pytest.mark.docker
def test_a_run_recorded_in_postgres_with_shared_blobs(
    database: str, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, base_image: str
) -> None:
    experiment = new_experiment(tmp_path_factory.mktemp("pg") / "pg", name="pgstore")
    built = experiment.build("pgstore")
    env = {"REPROPACK_STORE": database, "REPROPACK_STORE_BLOBS": str(tmp_path / "shared-blobs")}
    made = repropack(
        "run", str(built["tag"]), "--seeds", "0,1", "--group", "lab", "--output", str(tmp_path / "o"), "--json", env=env
    )
    assert made.code == 0, made.stderr
    listed = repropack("runs", "--group", "lab", "--json", env=env)
    rows = json.loads(listed.stdout)
    assert [r["seed"] for r in rows] == [0, 1] and all(r["metrics"]["mean"] == 6.0 for r in rows)
    import psycopg

    with psycopg.connect(database) as connection:  # the records are in the server, not in a local file
        count = connection.execute("SELECT count(*) FROM runs WHERE grp = 'lab'").fetchone()
    assert count == (2,)
    back = repropack("outputs", rows[0]["id"], "--output", str(tmp_path / "back"), env=env)
    assert back.code == 0, back.stderr
    assert json.loads((tmp_path / "back" / "metrics.json").read_text())["mean"] == 6.0
