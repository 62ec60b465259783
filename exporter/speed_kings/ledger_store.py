"""The budget ledger's SQLite file. Everything here blocks, so `Ledger` calls it only from
its one worker thread; the connection is created and used in that thread alone.

Amounts are integer nano-dollars (1e-9 $): sums are exact, and even a probe of a few
tokens on a cheap model (well under a micro-dollar) is recorded without rounding to zero.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

DB_NAME = "ledger.db"
LOCK_NAME = "ledger.lock"
SCHEMA_VERSION = 1
WAL_CHECKPOINT_PAGES = 64  # 256 kB of 4 kB pages
WAL_SIZE_LIMIT = 1 << 20  # bytes the WAL is truncated back to after a checkpoint

_SCHEMA = (
    """CREATE TABLE entries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    provider TEXT NOT NULL,
    reserved_nanousd INTEGER NOT NULL CHECK (reserved_nanousd >= 0),
    actual_nanousd INTEGER CHECK (actual_nanousd >= 0),  -- NULL until settled
    created REAL NOT NULL,  -- wall-clock Unix time of the reservation
    day TEXT NOT NULL,      -- "2026-11-22" in the ledger's time zone
    month TEXT NOT NULL,    -- "2026-11"
    state TEXT NOT NULL CHECK (state IN ('reserved', 'settled', 'released'))
    )""",
    "CREATE INDEX entries_month ON entries (month)",
)

# What an entry counts: an open reservation its worst case, a settled one what was billed.
_COUNTED = (
    "CASE state WHEN 'settled' THEN actual_nanousd WHEN 'reserved' THEN reserved_nanousd ELSE 0 END"
)


class LedgerError(Exception):
    """The state dir or the ledger database is unusable; the message names the path and the fix."""


@dataclass(frozen=True)
class Loaded:
    """What `Store.open` found: spend per (provider, day, month), after recovery."""

    totals: list[tuple[str, str, str, int]]
    last_id: int
    recovered: int


class Store:
    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.db_path = state_dir / DB_NAME
        self._conn: sqlite3.Connection | None = None
        self._lock_fd: int | None = None

    # -- open -------------------------------------------------------------------------

    def open(self, prune_before: str) -> Loaded:
        try:
            self._lock()
            return self._open_db(prune_before)
        except BaseException:
            self.close()
            raise

    def _lock(self) -> None:
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.state_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as err:
            raise self.not_writable(err) from err
        try:
            # Two daemons on one ledger would each allow the whole cap: refuse the second.
            # The kernel drops the lock when the process dies, kill -9 included.
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(fd)
            if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise LedgerError(
                    f"state_dir {self.state_dir} is in use by another speed-kings process "
                    f"(lock {self.state_dir / LOCK_NAME}); fix: stop the other process or give "
                    "each instance its own state_dir"
                ) from err
            raise self.not_writable(err) from err
        self._lock_fd = fd

    def _open_db(self, prune_before: str) -> Loaded:
        try:
            conn = sqlite3.connect(self.db_path, timeout=5.0, isolation_level=None)
        except sqlite3.Error as err:
            raise self.error(err, "open") from err
        self._conn = conn
        try:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise LedgerError(
                    f"ledger database {self.db_path} cannot use WAL mode (got {mode!r}); fix: "
                    "put state_dir on a local filesystem (not NFS/SMB)"
                )
            # Durability over speed: a commit is on disk before reserve() returns.
            conn.execute("PRAGMA synchronous=FULL")
            # A small WAL: SQLite's default checkpoints at 1,000 pages (4 MB), which a ledger
            # writing ~16 kB a probe (reserve and settle) reaches in 250 probes; on a small
            # volume that alone can fill the disk. Checkpointed every 64 pages, the WAL is reused
            # from its start and stays a few hundred kB, so steady running needs no new space.
            conn.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
            conn.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
            check = [row[0] for row in conn.execute("PRAGMA quick_check")]
            if check != ["ok"]:
                raise self.corrupt("; ".join(str(c) for c in check[:3]))
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise LedgerError(
                    f"ledger database {self.db_path} has schema version {version}, newer than "
                    f"this speed-kings knows ({SCHEMA_VERSION}); fix: run a newer speed-kings "
                    "or move the file aside"
                )
            with _transaction(conn):
                if version == 0:  # executescript would commit: one statement at a time
                    for statement in _SCHEMA:
                        conn.execute(statement)
                    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                # The process that made these died mid-probe: the probe may have been billed
                # in full, so keep its worst case; spend never decreases across a crash.
                recovered = conn.execute(
                    "UPDATE entries SET state = 'settled', actual_nanousd = reserved_nanousd "
                    "WHERE state = 'reserved'"
                ).rowcount
                self._prune(conn, prune_before)
            totals = [
                (str(p), str(d), str(m), int(n))
                for p, d, m, n in conn.execute(
                    f"SELECT provider, day, month, SUM({_COUNTED}) FROM entries "
                    "GROUP BY provider, day, month"
                )
            ]
            row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'entries'").fetchone()
            return Loaded(totals, int(row[0]) if row else 0, recovered)
        except sqlite3.Error as err:
            raise self.error(err, "open") from err

    # -- writes -----------------------------------------------------------------------

    def insert(
        self,
        entry_id: int,
        provider: str,
        reserved: int,
        created: float,
        day: str,
        month: str,
        prune_before: str | None,
    ) -> None:
        conn = self._connection()
        try:
            with _transaction(conn):
                if prune_before is not None:
                    self._prune(conn, prune_before)
                conn.execute(
                    "INSERT INTO entries (id, provider, reserved_nanousd, actual_nanousd, "
                    "created, day, month, state) VALUES (?, ?, ?, NULL, ?, ?, ?, 'reserved')",
                    (entry_id, provider, reserved, created, day, month),
                )
        except sqlite3.Error as err:
            raise self.error(err, "record a reservation in") from err

    def finish(self, entry_id: int, actual: int, state: str) -> None:
        """Settle (state 'settled', actual billed) or release (state 'released', actual 0)."""
        conn = self._connection()
        try:
            with _transaction(conn):
                conn.execute(
                    "UPDATE entries SET state = ?, actual_nanousd = ? "
                    "WHERE id = ? AND state = 'reserved'",
                    (state, actual, entry_id),
                )
        except sqlite3.Error as err:
            raise self.error(err, f"record the {state} cost in") from err

    @staticmethod
    def _prune(conn: sqlite3.Connection, before: str) -> None:
        # Only the current windows count; Prometheus keeps the history. Open ones stay.
        conn.execute("DELETE FROM entries WHERE month < ? AND state != 'reserved'", (before,))

    def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.close()
        if self._lock_fd is not None:
            fd, self._lock_fd = self._lock_fd, None
            os.close(fd)

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise LedgerError(f"ledger database {self.db_path} is closed")
        return self._conn

    # -- errors -----------------------------------------------------------------------

    def not_writable(self, err: BaseException | str) -> LedgerError:
        return LedgerError(
            f"state_dir {self.state_dir} is not writable: {err}; fix: mount a writable volume "
            "there or set state_dir to a writable directory"
        )

    def corrupt(self, detail: str) -> LedgerError:
        db = self.db_path
        return LedgerError(
            f"ledger database {db} is corrupt or not a speed-kings ledger ({detail}); fix: stop "
            f"speed-kings and move it aside (mv {db} {db}.corrupt, and its -wal/-shm files) "
            "to start a fresh ledger; the spend it recorded is then forgotten, so check your "
            "providers' billing for this month"
        )

    def error(self, err: sqlite3.Error, doing: str) -> LedgerError:
        code = getattr(err, "sqlite_errorcode", None)
        if code is not None:
            code &= 0xFF  # extended codes carry the primary code in the low byte
        if code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
            return self.corrupt(str(err))
        if code == sqlite3.SQLITE_FULL:
            return LedgerError(
                f"could not {doing} the budget ledger {self.db_path}: {err}; fix: free space "
                f"on the volume holding state_dir {self.state_dir}"
            )
        if code in (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM):
            return self.not_writable(f"{self.db_path}: {err}")
        return LedgerError(
            f"could not {doing} the budget ledger {self.db_path}: {err}; fix: check the volume "
            f"holding state_dir {self.state_dir} (writable, not full, local disk)"
        )


class _transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on error (SQLite may already have done so)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def __enter__(self) -> None:
        self._conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self._conn.execute("COMMIT")
        elif self._conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):  # the original error is the one to report
                self._conn.execute("ROLLBACK")
