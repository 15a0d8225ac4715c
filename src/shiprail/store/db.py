"""Opening the store: which database, its connection settings, and its migrations."""

from __future__ import annotations

import os
import re
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Connection, Engine, create_engine, event, func, inspect, make_url, select, text
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    InterfaceError,
    OperationalError,
    ProgrammingError,
    SQLAlchemyError,
)
from sqlalchemy.orm import Session, sessionmaker

from shiprail import __version__, defaults
from shiprail.domain.states import DRIVEN
from shiprail.errors import BadInput, NotFound, SchemaChanged, StoreError, StoreUnreachable

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
# Any constant works; it only has to be the same for every shiprail process on one database.
_MIGRATION_LOCK_KEY = 7_450_112
# The newest migration's revision (tests/integration/store/test_migrations.py checks it against
# the scripts). A store already there is opened without loading Alembic and the scripts, which
# would cost every command about a third of a second.
SCHEMA_HEAD = "0012"


def default_url(root: Path | None = None) -> str:
    """SQLite under ``.shiprail/`` of the project root (or the working directory)."""
    base = (root or Path.cwd()) / defaults.STATE_DIR / defaults.SQLITE_FILE
    return f"sqlite:///{base}"


def resolve_url(explicit: str | None = None, root: Path | None = None) -> str:
    """``--db``, else ``SHIPRAIL_DATABASE_URL``, else the default SQLite file."""
    url = explicit or os.environ.get(defaults.DATABASE_URL_ENV) or default_url(root)
    # Plain postgresql:// means psycopg 3 here, the driver shiprail ships with.
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            url = "postgresql+psycopg://" + url[len(prefix) :]
    return url


# The execution option that marks the SQLite engine of snapshots (Store.snapshot).
_READ_ONLY = "shiprail_read_only"


def _sqlite_setup(engine: Engine, stopping: threading.Event) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, open transactions, so we can make them IMMEDIATE:
        # a writer takes the lock at BEGIN instead of failing on upgrade mid-transaction.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={int(defaults.SQLITE_BUSY_TIMEOUT_MS)}")
        cur.execute("PRAGMA journal_mode=WAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        # A snapshot only reads: a deferred BEGIN, whose first read fixes what the transaction
        # sees (WAL), leaves writers free while it reads. IMMEDIATE there would hold every writer
        # off for as long as `audit verify` of a long chain takes (36 s for 800,000 events).
        if conn.get_execution_options().get(_READ_ONLY):
            conn.exec_driver_sql("BEGIN")
        else:
            _begin_immediate(conn, stopping)


def _begin_immediate(conn: Connection, stopping: threading.Event) -> None:
    """BEGIN IMMEDIATE on ``conn``, waiting for another process's write lock up to the busy timeout, in
    slices, and no longer once ``stopping`` is set: then SQLAlchemy's "database is locked" error, as at
    the end of the busy timeout.

    SQLite's own wait for the lock (its busy handler) cannot be interrupted: neither ``interrupt()``
    nor a progress handler reaches it, so a process going away waited out the whole busy timeout.
    """
    dbapi_conn = cast("sqlite3.Connection", conn.connection.driver_connection)
    deadline = time.monotonic() + defaults.SQLITE_BUSY_TIMEOUT_MS / 1000
    try:
        dbapi_conn.execute(f"PRAGMA busy_timeout={int(defaults.SQLITE_LOCK_WAIT_SLICE_MS)}")
        while True:
            try:
                dbapi_conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.Error as exc:
                busy = exc.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY
            if not busy or stopping.is_set() or time.monotonic() >= deadline:
                break
        # Once more through SQLAlchemy, at once: its error, wrapped as every other ("database is locked").
        dbapi_conn.execute("PRAGMA busy_timeout=0")
        conn.exec_driver_sql("BEGIN IMMEDIATE")  # unless the lock just went
    finally:
        with suppress(sqlite3.ProgrammingError):  # closed by SQLAlchemy after an error: nothing to restore
            dbapi_conn.execute(f"PRAGMA busy_timeout={int(defaults.SQLITE_BUSY_TIMEOUT_MS)}")


def _sqlite_foreign_keys(conn: Connection, *, on: bool) -> None:
    """Turn SQLite's foreign key checks on or off for ``conn``, outside any transaction (on the driver:
    through SQLAlchemy the statement would open one, where SQLite ignores the pragma)."""
    driver = conn.connection.driver_connection
    if driver is not None:  # None: the connection was invalidated, and the pool opens a new one, checks on
        driver.execute(f"PRAGMA foreign_keys={'ON' if on else 'OFF'}")


def alembic_config() -> Config:
    """Alembic configuration pointing at the packaged migrations."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def known_revisions() -> list[str]:
    """This shiprail's schema revisions, oldest first (its migrations form one line)."""
    from alembic.script import ScriptDirectory

    newest_first = [script.revision for script in ScriptDirectory.from_config(alembic_config()).walk_revisions()]
    return newest_first[::-1]


def unknown_revision_text(given: str, known: list[str]) -> str:
    """What ``shiprail migrate --to`` says of a revision this shiprail has no migration for."""
    return (
        f"--to {given}: this shiprail ({__version__}) has no schema revision {given!r}; give one of "
        f"{', '.join(known)} (the newest, {known[-1]}, is also `head`)"
    )


@dataclass(frozen=True)
class Migration:
    """What ``Store.migrate_to`` did."""

    before: list[str]
    """The revisions the store was at (``[]``: it had no tables)."""
    after: str
    back: bool
    """Whether it went back (a downgrade)."""
    in_flight: list[tuple[str, str]]
    """Going back: the releases a controller drives (id, status), which the older shiprail takes on."""


def _live_controllers(conn: Connection, now: datetime) -> list[str]:
    """The controllers registered in the database that are alive at ``now`` or hold a lease, by name.

    Read with the columns every revision that has the table has (``leases`` since 0002,
    ``controllers`` since 0008). On PostgreSQL ``now`` is the database's: the clock the controllers
    time their leases by (``leases.lease_clock``), whatever this host's says. A controller of this
    host whose process is gone (``leases.process_gone``) is not alive, as ``shiprail controllers``
    does not list it.
    """
    # Imported here: the leases module is built on this one.
    from shiprail.controller.leases import process_gone
    from shiprail.store.models import ControllerPresence, Lease

    if conn.dialect.name == "postgresql":
        now = conn.execute(select(func.clock_timestamp())).scalar_one()
    holders: set[str] = set()
    tables = set(inspect(conn).get_table_names())
    for table in (ControllerPresence, Lease):
        if table.__tablename__ in tables:
            holders.update(conn.execute(select(table.holder).where(table.expires_at > now)).scalars())
    return sorted(holder for holder in holders if not process_gone(holder))


# What a `shiprail serve` names its PostgreSQL sessions (``application_name``): this, the first 8 hex
# digits of the md5 of the schema holding the store, and its host (cut to fit PostgreSQL's 63 bytes) and PID.
SERVE_SESSION = "shiprail serve"
# How much of an ``application_name`` PostgreSQL keeps (NAMEDATALEN - 1 bytes).
_APPLICATION_NAME_BYTES = 63


def _live_serves(conn: Connection) -> list[str]:
    """The `shiprail serve` processes connected to this store now (``Store.name_sessions``), as
    ``serve HOST:PID``. A serve without a controller records no presence: its sessions are how it is
    seen. Every role sees another session's ``application_name`` in ``pg_stat_activity``."""
    if conn.dialect.name != "postgresql":
        return []
    query = text(
        "SELECT DISTINCT substr(application_name, length(:prefix) + 1) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid() "
        "AND starts_with(application_name, :prefix || left(md5(current_schema()), 8) || ' ')"
    )
    tagged = conn.execute(query, {"prefix": f"{SERVE_SESSION} "}).scalars()
    return sorted(f"serve {who.partition(' ')[2]}" for who in tagged)


def _in_flight(conn: Connection) -> list[tuple[str, str]]:
    """The releases a controller drives now (rolling out, verifying, paused, rolling back), by id."""
    from shiprail.store.models import Release

    query = select(Release.id, Release.status).where(Release.status.in_([str(s) for s in DRIVEN])).order_by(Release.id)
    return [(rid, status) for rid, status in conn.execute(query)]


def _without_password(text: str) -> str:
    """``text`` with the password of any ``scheme://user:password@`` in it masked.

    The password runs to the ``@``, as SQLAlchemy parses it, spaces included: a password typed
    with a space (not percent-encoded) is still a password.
    """
    return re.sub(r"(://[^/:@\s]*:)[^@]*@", r"\1***@", text)


# scheme://…@…@host: an '@' typed unencoded in a user name or password.
_TWO_AT = re.compile(r"[A-Za-z][\w+.-]*://[^/?#]*@[^/?#]*@")


def first_line(exc: SQLAlchemyError) -> str:
    """The database's own message, first line only (not the SQL statement and link SQLAlchemy add)."""
    orig = getattr(exc, "orig", None)
    lines = str(orig if orig is not None else exc).strip().splitlines()
    return lines[0] if lines else "unknown error"


# SQLSTATEs of a server that is away for now: a connection exception (08…), an administrator's
# shutdown, a crash, or a server still starting up (57P01-57P03).
_AWAY_STATES = ("08", "57P01", "57P02", "57P03")
# libpq reports a server's refusal of a new connection without its SQLSTATE, as "…failed: FATAL:  …":
# these refusals are of a server away for now (57P03 starting up, shutting down, in recovery; 57P01
# an administrator's shutdown; 53300 its connection slots full). Any other (a role or database that
# does not exist, a password refused, no pg_hba.conf entry) answers the same at the next try.
_AWAY_REFUSALS = ("the database system is", "terminating connection", "too many clients", "connection slots")
# And libpq's own refusals, which no server sent: no password to give, SSL the server does not
# offer or a certificate that cannot be checked. They too answer the same at the next try.
_REFUSED_HERE = ("fe_sendauth", "SSL was required", "certificate", "channel binding")


def unreachable(exc: DBAPIError) -> bool:
    """Whether PostgreSQL could not be reached (no answer, a cut connection, a server restarting),
    as opposed to one that answered no (a refused login, a database that does not exist)."""
    state = getattr(exc.orig, "sqlstate", None)
    if state is not None:
        return str(state).startswith(_AWAY_STATES)
    said = str(exc.orig)
    if any(refusal in said for refusal in _REFUSED_HERE):
        return False
    return "FATAL:" not in said or any(refusal in said for refusal in _AWAY_REFUSALS)


def store_away(exc: Exception) -> bool:
    """Whether ``exc`` is the store away (refused, cut, restarting; on SQLite, busy), as opposed to a
    statement the store answered no to (a deadlock, a constraint, a value too long): an outage to
    ride out and record once (the controller's ``Outage``), not one release's failure."""
    if isinstance(exc, StoreError):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, OperationalError | InterfaceError) and unreachable(exc)


def store_error_text(exc: Exception) -> str:
    """What to say of a store that could not be reached: the database's first line (``first_line``),
    or a ``StoreError``'s own message."""
    return first_line(exc) if isinstance(exc, SQLAlchemyError) else str(exc)


def _stored_revisions(conn: Connection) -> list[str]:
    """The revisions in the ``alembic_version`` table (none without the table), as Alembic reads them."""
    if not inspect(conn).has_table("alembic_version"):
        return []
    return list(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())


def _with_pg_connect_args(url: str, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` for ``create_engine``, with ``PG_CONNECT_ARGS`` for a PostgreSQL URL.

    The URL's own query parameters and the caller's ``connect_args`` win over the defaults.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        return options
    given = dict(options.get("connect_args") or {})
    chosen = {k: v for k, v in defaults.PG_CONNECT_ARGS.items() if k not in parsed.query and k not in given}
    return {**options, "connect_args": {**chosen, **given}}


class Store:
    """A database holding releases and the audit chain."""

    def __init__(
        self, url: str, *, migrate: bool = True, create: bool = True, engine_options: dict[str, Any] | None = None
    ) -> None:
        """Open the database at ``url``; ``migrate`` brings its schema to the newest revision.

        ``create=False``: for the commands that only read a store. A database without shiprail's
        tables is refused (``NotFound``) instead of given them (an empty new one would "verify" as a
        clean, empty audit trail), and one at an older schema revision is refused instead of
        migrated (``StoreError``): a read must not write, and an auditor's copy or backup must be
        left as it was.
        """
        self.url = url
        self.migrated_from: list[str] | None = None
        """The revisions found before ``migrate`` changed anything (``[]``: none, it created the
        tables); None when it found the schema current or did not run."""
        if _TWO_AT.match(url):
            # The driver would take what follows the first '@' for the host, and name it (part of
            # the password) in its messages; the URL is not printed here for the same reason.
            raise BadInput(
                f"--db / {defaults.DATABASE_URL_ENV}: the URL holds more than one '@' before its host; "
                "percent-encode an '@' in the user name or password as %40"
            )
        try:
            if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
                # One level only (a project's .shiprail/): a mistyped path must not grow a directory tree.
                folder = Path(url.removeprefix("sqlite:///")).parent
                for place in (folder.parent, folder):
                    if place.exists() and not place.is_dir():
                        raise BadInput(f"--db / {defaults.DATABASE_URL_ENV}: {place} is a file, not a directory")
                if not folder.parent.is_dir():
                    raise BadInput(
                        f"--db / {defaults.DATABASE_URL_ENV}: the directory {folder.parent} does not exist; "
                        "create it or fix the path"
                    )
                folder.mkdir(exist_ok=True)
            self.engine = create_engine(url, **_with_pg_connect_args(url, engine_options or {}))
        except (ArgumentError, ImportError, ValueError) as exc:
            if "://" not in url and "@" not in url:
                # A file's path where a URL goes (`--db .shiprail/shiprail.db`): say how to name it.
                raise BadInput(
                    f"--db / {defaults.DATABASE_URL_ENV}: {url!r} is not a database URL; name a SQLite file "
                    f"as sqlite:///{Path(url).absolute()} (sqlite:/// and its path), or PostgreSQL as "
                    "postgresql://user@host/db"
                ) from None
            # ValueError: a port that is not a number, an unclosed IPv6 bracket (urllib's parsing).
            raise BadInput(
                f"--db / {defaults.DATABASE_URL_ENV}: {_without_password(url)!r} is not a usable database URL "
                f"({_without_password(str(exc))})"
            ) from None
        # Set when the process is going: a write transaction stops waiting for SQLite's lock (stop_lock_waits).
        self._stopping = threading.Event()
        if self.engine.dialect.name == "sqlite":
            _sqlite_setup(self.engine, self._stopping)
        # The pool's records of the connections lent out now, for cancel_statements. Kept by record,
        # not by driver connection: an invalidated connection comes back with no driver connection
        # (checkin's first argument is None), and keeping that one would leak it for ever.
        self._lent: set[Any] = set()
        event.listen(self.engine, "checkout", lambda _conn, record, _proxy: self._lent.add(record))
        event.listen(self.engine, "checkin", lambda _conn, record: self._lent.discard(record))
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        # PostgreSQL's default, READ COMMITTED, gives each statement its own snapshot: a reader of
        # the audit chain and its head would see events committed between the two reads. SQLite's
        # deferred read transaction in WAL mode sees one snapshot from its first read on.
        snapshots = (
            self.engine.execution_options(isolation_level="REPEATABLE READ")
            if self.engine.dialect.name == "postgresql"
            else self.engine.execution_options(**{_READ_ONLY: True})
        )
        self._snapshots = sessionmaker(snapshots, expire_on_commit=False)
        if migrate:
            self.migrate(create=create)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def migrate(self, *, create: bool = True) -> None:
        """Bring the schema to the newest migration (a no-op when it is there already).

        ``create=False`` refuses a database without shiprail's tables rather than create them, and
        one at an older revision rather than migrate it.
        """

        def upgrade(conn: Connection, stored: list[str]) -> bool:
            if stored == [SCHEMA_HEAD]:
                return False
            if not stored and not create:
                raise NotFound(
                    f"no shiprail store in the database {self.display_url} (it has no shiprail tables); "
                    "`shiprail migrate` creates them, run as the role that owns the schema"
                )
            self._refuse_unknown(stored, known_revisions())
            if not create:
                raise StoreError(
                    f"the database {self.display_url} is at schema revision {', '.join(stored)}, older than "
                    f"{SCHEMA_HEAD}, which this shiprail ({__version__}) reads; a command that only reads does "
                    "not migrate it: run `shiprail migrate` on it first (on a backup, on a copy of it), or read "
                    "it with the shiprail that wrote it (nothing was changed)"
                )
            from alembic import command

            cfg = alembic_config()
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
            self.migrated_from = stored
            return True

        self._migrating(upgrade)

    def migrate_to(self, revision: str, now: datetime, *, force: bool = False) -> Migration:
        """Upgrade or downgrade the schema to ``revision`` (one of ``known_revisions()``).

        Going back is refused (``StoreError``, nothing changed) while a controller registered in the
        database is alive at ``now`` or holds a lease, unless ``force``: it would go on writing to a
        schema taken from under it. Releases in flight are no reason to refuse (their state is in
        the tables every revision has); they are returned so the caller can say which they are.
        """
        known = known_revisions()
        if revision not in known:
            raise BadInput(unknown_revision_text(revision, known))
        found: list[Migration] = []

        def move(conn: Connection, stored: list[str]) -> bool:
            self._refuse_unknown(stored, known)
            at = known.index(stored[0]) if stored else -1
            to = known.index(revision)
            in_flight: list[tuple[str, str]] = []
            if to < at:
                controllers, serves = _live_controllers(conn, now), _live_serves(conn)
                if (controllers or serves) and not force:
                    running = [f"{len(controllers)} controller(s)"] if controllers else []
                    running += [f"{len(serves)} `shiprail serve`(s)"] if serves else []
                    raise StoreError(
                        f"{' and '.join(running)} still run on the database {self.display_url} "
                        f"({', '.join([*controllers, *serves])}): stop every `shiprail controller` and `shiprail "
                        f"serve` on it before taking it back to schema revision {revision} (or pass --force) "
                        "(nothing was changed)"
                    )
                in_flight = _in_flight(conn)
            found.append(Migration(stored, revision, to < at, in_flight))
            if to == at:
                return False
            from alembic import command

            cfg = alembic_config()
            cfg.attributes["connection"] = conn
            if to > at:
                command.upgrade(cfg, revision)
            else:
                command.downgrade(cfg, revision)
            return True

        self._migrating(move, revision)
        return found[0]

    def _migrating(self, body: Callable[[Connection, list[str]], bool], target: str | None = None) -> None:
        """Run ``body`` with the stored revisions in one transaction (under the migration lock on
        PostgreSQL); it says whether it changed the schema. A database error becomes one sentence.
        ``target``: the revision ``migrate --to`` moves to (None: the newest, as every command migrates)."""
        stored: list[str] = []
        try:
            with self.engine.connect() as conn:
                sqlite = self.dialect == "sqlite"
                if sqlite:
                    # Alembic's batch mode rebuilds a table on SQLite (a new one, the rows copied, the old
                    # one dropped): dropping `overrides` with foreign keys on deleted its rows first, and
                    # failed on the post-mortems that name them. The pragma is a no-op in a transaction.
                    _sqlite_foreign_keys(conn, on=False)
                try:
                    with conn.begin():
                        if self.dialect == "postgresql":
                            # Two processes starting at once must not both run the migrations.
                            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK_KEY})
                        stored = _stored_revisions(conn)
                        changed = body(conn, stored)
                        # A whole-database scan: only after a migration, not at every opening.
                        check = sqlite and changed
                        broken = conn.exec_driver_sql("PRAGMA foreign_key_check").first() if check else None
                        if broken is not None:
                            raise StoreError(
                                f"migrating the database {self.display_url} would leave a row of {broken[0]} naming "
                                f"a missing row of {broken[2]}; nothing was changed"
                            )
                finally:
                    if sqlite:
                        _sqlite_foreign_keys(conn, on=True)
        except OperationalError as exc:
            # A server away (refused, cut, restarting) may answer later; a refused login will not.
            message = f"cannot open the database {self.display_url}: {first_line(exc)}"
            if self.dialect == "postgresql" and unreachable(exc):
                raise StoreUnreachable(message, first_line(exc)) from None
            raise StoreError(message) from None
        except ProgrammingError as exc:
            if exc.statement is None:
                # Refused before any statement ran: the driver could not use the URL's parameters
                # (psycopg: 'invalid connection option "sslmod"', 'bad value for connect_timeout').
                raise BadInput(
                    f"--db / {defaults.DATABASE_URL_ENV}: {self.display_url!r} is not a usable database URL "
                    f"({first_line(exc)})"
                ) from None
            raise self._cannot_migrate(stored, exc, target) from None
        except SQLAlchemyError as exc:
            # Reading the schema's revision fails the same way as changing it (a role without the grants).
            raise self._cannot_migrate(stored, exc, target) from None

    def _refuse_unknown(self, stored: list[str], known: list[str]) -> None:
        """Refuse a store at a revision that is not among ``known``: a newer shiprail migrated it (or
        the table was edited). Alembic would fail with a traceback, and an older shiprail must not
        touch a schema it does not know."""
        unknown = [revision for revision in stored if revision not in known]
        if unknown:
            raise StoreError(
                f"the database {self.display_url} is at schema revision {unknown[0]}, which this "
                f"shiprail ({__version__}, newest revision {SCHEMA_HEAD}) does not know: a newer "
                "shiprail migrated it; run that version or newer, or take the store back with it first "
                f"(`shiprail migrate --to {SCHEMA_HEAD}`, as in docs/operations.md) (nothing was changed)"
            )

    def _cannot_migrate(self, stored: list[str], exc: SQLAlchemyError, target: str | None = None) -> StoreError:
        """The error for a failed check or migration; ``stored``: the revisions read before it failed;
        ``target``: the revision ``migrate --to`` was taking it to."""
        if stored and target is not None and stored != [target]:
            return StoreError(
                f"the database {self.display_url} is at schema revision {', '.join(stored)}, and taking it to "
                f"{target} failed: {first_line(exc)}; run `shiprail migrate --to {target}` as the role that owns "
                "the schema (nothing was changed)"
            )
        if stored and stored != [SCHEMA_HEAD]:
            # An upgraded shiprail on a store an older one migrated, as a role that may not alter
            # it (the app role): say that it needs migrating, and how, not only what was refused.
            return StoreError(
                f"the database {self.display_url} is at schema revision {', '.join(stored)} and this shiprail "
                f"({__version__}) needs {SCHEMA_HEAD}, but migrating it failed: {first_line(exc)}; run `shiprail "
                "migrate` once as the role that owns the schema (nothing was changed)"
            )
        return StoreError(f"cannot check or migrate the database {self.display_url}: {first_line(exc)}")

    def name_sessions(self, role: str = SERVE_SESSION) -> None:
        """Name this process's PostgreSQL sessions as ``role``'s on this store (``application_name``),
        so that ``migrate --to`` sees it running even when it records no presence (``serve
        --no-controller``); a no-op on SQLite. Connections opened before are closed first."""
        if self.dialect != "postgresql":
            return
        # PostgreSQL keeps 63 bytes of a name: a long host name is cut in its middle, keeping its end,
        # which tells apart the pods of one deployment (their PIDs alike, 1), and the PID whole.
        pid = f":{os.getpid()}"
        room = _APPLICATION_NAME_BYTES - len(role) - 1 - 9 - len(pid)  # the schema's tag takes 9
        host = socket.gethostname().encode("ascii", "replace").decode("ascii")
        if len(host) > room:
            head = room // 2 - 1
            host = f"{host[:head]}..{host[len(host) - (room - head - 2) :]}"
        who = host + pid

        @event.listens_for(self.engine, "connect")
        def _name(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            name = "%s || left(md5(current_schema()), 8) || ' ' || %s"
            cur.execute(f"SELECT set_config('application_name', {name}, false)", (f"{role} ", who))
            cur.close()
            dbapi_conn.commit()  # set outside SQLAlchemy's transactions: a rollback must not undo it

        self.engine.dispose()

    def check_schema(self) -> None:
        """Raise ``SchemaChanged`` unless the schema is still at this shiprail's newest revision.

        A long-running process (the controller) opened the store at ``SCHEMA_HEAD``; a newer
        shiprail may migrate it meanwhile (a rolling upgrade), and this one must then stop writing
        to a schema it does not know, as it would refuse to open it.
        """
        # A database that cannot be reached raises here as it would at the pass's first read.
        with self.engine.connect() as conn:
            try:
                stored = list(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())
            except (OperationalError, ProgrammingError):
                conn.rollback()
                if inspect(conn).has_table("alembic_version"):
                    raise
                # Reachable, but shiprail's tables are gone: say so, not the driver's "relation
                # alembic_version does not exist". The caller looks again, as for an outage.
                raise StoreError(
                    f"the database {self.display_url} has no shiprail tables any more (dropped, or an empty "
                    "database in its place): restore it from a backup; `shiprail migrate` would start an empty store"
                ) from None
        if stored == [SCHEMA_HEAD]:
            return
        if stored and set(stored) <= set(known_revisions()):
            # Older, not newer: nobody migrated it forward, it was taken back (or a backup restored).
            raise SchemaChanged(
                f"the database {self.display_url} is now at schema revision {', '.join(stored)}, older than "
                f"{SCHEMA_HEAD}, which this shiprail ({__version__}) needs: it was taken back (`shiprail migrate "
                "--to`) or restored from an older backup while this one ran; stopped (run the shiprail of that "
                "revision on every machine that shares the database, or `shiprail migrate` to bring it forward again)"
            )
        now = ", ".join(stored) or "none"
        raise SchemaChanged(
            f"the database {self.display_url} is now at schema revision {now}, not {SCHEMA_HEAD}, the newest "
            f"this shiprail ({__version__}) knows: another shiprail migrated it while this one ran; stopped "
            "(run the shiprail that migrated it, on every machine that shares the database)"
        )

    @property
    def display_url(self) -> str:
        """The URL without a password."""
        return self.engine.url.render_as_string(hide_password=True)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One unit of work: committed when the block ends, rolled back if it raises."""
        with self._sessions() as session, session.begin():
            yield session

    @contextmanager
    def snapshot(self) -> Iterator[Session]:
        """A transaction whose reads all see the database as of one moment (for reading only).

        Use it to read the audit chain together with its head, or a release with its events:
        appends committed meanwhile stay out of it on every backend.
        """
        with self._snapshots() as session, session.begin():
            yield session

    def stop_lock_waits(self) -> None:
        """For a process that is going: from now on a write transaction waiting for another process's lock
        on SQLite gives up within ``SQLITE_LOCK_WAIT_SLICE_MS`` ("database is locked") instead of at the
        end of the 30 s busy timeout; one that gets the lock runs as usual. PostgreSQL: see cancel_statements."""
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        """Whether ``stop_lock_waits`` was called: a store error now is the process going, not an outage to log."""
        return self._stopping.is_set()

    def cancel_statements(self) -> int:
        """Cancel what every connection lent out is running, for a process that is going: the
        transactions under way fail and roll back. The number of connections told.

        PostgreSQL only: SQLite cannot be interrupted while it waits for another process's lock
        (``stop_lock_waits`` ends that wait).
        """
        if self.dialect != "postgresql":
            return 0
        lent = [c for c in (record.dbapi_connection for record in list(self._lent)) if c is not None]
        for dbapi_conn in lent:
            with suppress(Exception):  # finished meanwhile, or the server is away: nothing to cancel
                _cancel(dbapi_conn)
        return len(lent)

    def close(self) -> None:
        self.engine.dispose()


def _cancel(dbapi_conn: Any) -> None:
    """Cancel what the driver connection ``dbapi_conn`` runs: psycopg 3.2's ``cancel_safe`` (bounded by
    ``STORE_CANCEL_TIMEOUT_SECONDS``), else the ``cancel()`` of psycopg 3.1 (which pyproject allows) and
    psycopg2 (a ``postgresql+psycopg2://`` URL), which have no ``cancel_safe``."""
    cancel_safe = getattr(dbapi_conn, "cancel_safe", None)
    if cancel_safe is not None:
        cancel_safe(timeout=defaults.STORE_CANCEL_TIMEOUT_SECONDS)
    else:
        dbapi_conn.cancel()
