"""What deepq tune checks of --storage before Optuna opens it: a database that keeps the study after the command
ends (not SQLite in memory), and, for an SQLite file that exists, one that holds Optuna's tables or none (Optuna
would add its tables to another program's database)."""

from __future__ import annotations

import contextlib
import re
import sqlite3
import time
from pathlib import Path
from typing import Any

from deepq.errors import ConfigError

OPTUNA_TABLES = {"studies", "trials", "version_info", "alembic_version", "trial_params", "trial_values"}
NEW_FILE = "give a new file or one deepq tune made (e.g. --storage sqlite:///tune.db)"


def check_storage(url: str) -> None:
    """ConfigError, in one line, for a storage that would lose the study or is another program's database."""
    from sqlalchemy.engine import make_url  # Optuna's RDBStorage is SQLAlchemy's: its reading of the URL
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return  # Optuna's opening says what is wrong with it
    if parsed.get_backend_name() != "sqlite":
        return
    database = parsed.database or ""
    if database in ("", ":memory:") or parsed.query.get("mode") == "memory":
        raise ConfigError(f"--storage {url}: an in-memory database ends with this command, and the study with it, "
                          "so the same command could not continue it; leave --storage out to keep the study in "
                          "DIR/study.db, or give a file (e.g. --storage sqlite:///tune.db)")
    path = Path(database.removeprefix("file:").split("?")[0])
    try:
        if not path.is_file() or path.stat().st_size == 0:
            return  # a new database: Optuna makes its tables (or, for a folder, says it cannot)
    except OSError:
        return  # a name too long ...: Optuna's opening says so
    # Any one of Optuna's tables will do: a worker starting beside this one may be making them at this moment.
    if (found := tables(url, path)) and not found & OPTUNA_TABLES:
        raise ConfigError(f"--storage {url}: {path} is not an Optuna study database (it is another program's SQLite "
                          f"database, with the tables {', '.join(sorted(found)[:5])}); {NEW_FILE}")


def tables(url: str, path: Path) -> set[str]:
    """The names of the tables in the SQLite database at path, read without writing to it (waiting for a worker
    that is writing, as Optuna's connections do)."""
    try:
        with contextlib.closing(sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True, timeout=60)) as db:
            return {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as e:  # "file is not a database", a locked or damaged file
        raise ConfigError(f"--storage {url}: {path} cannot be read as an SQLite database ({e}); {NEW_FILE}") from None



# What creating a new database's tables fails with when another worker is creating them at the same moment.
CREATING = ("already exists", "UNIQUE constraint failed: alembic_version", "duplicate key value")
RACE_TRIES = 5


def connect(url: str, optuna: Any) -> Any:
    """Optuna's RDBStorage at url; a ConfigError when Optuna cannot open it."""
    # SQLite lets one writer in at a time; parallel workers wait up to a minute for it instead of failing at once
    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite:") else {}
    for attempt in range(RACE_TRIES):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=engine)
        except Exception as e:  # SQLAlchemy's and the drivers' many errors: a bad URL, a missing driver, no server
            if attempt + 1 < RACE_TRIES and any(s in str(e) for s in CREATING):
                time.sleep(0.2 * (attempt + 1))  # another worker is creating this new database's tables: it will be
                continue  # there in a moment (measured: 5 of 18 workers started together on a new file failed)
            raise ConfigError(f"--storage {url}: Optuna cannot open it ({why(e)}); give a database URL such as "
                              "sqlite:///tune.db (a file in an existing folder) or postgresql://USER@HOST/DB") from None
    raise AssertionError("unreachable: the last try returns or raises")


def why(e: BaseException) -> str:
    """The first line of what the database said (Optuna's StorageInternalError wraps it), without its
    '(sqlite3.OperationalError) ' prefix."""
    inner = e.__cause__ or e
    return re.sub(r"^\(\S+\) ", "", (str(inner).strip().splitlines() or [type(inner).__name__])[0])[:200]
