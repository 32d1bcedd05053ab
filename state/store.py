"""Atomic, versioned JSON state in the data directory, shared safely by the server and the CLI.

The whole registry (keys, model settings, admin settings, admin password hash) lives in one
file, `<data_dir>/state.json`, as `{"version": N, "keys": [...], "models": {...},
"settings": {...}, "admin": {...}}`. One file means one atomic write covers every change.

Writes: a temp file in the same directory, fsync, a hard link of the previous good file to
`state.json.bak`, os.replace, fsync of the directory. A crash at any instant leaves the old or
the new version. Every read-modify-write (server or CLI) holds an exclusive fcntl lock on
`<data_dir>/.state.lock`; the server notices a file changed by someone else through its
(inode, mtime, size) stamp and reloads before its next write, so neither side loses changes.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import json
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

STATE_FILE = "state.json"
LOCK_FILE = ".state.lock"
VERSION = 1
# Migrations: MIGRATIONS[n] turns a version-n document into version n+1.
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}
SECTIONS: dict[str, type] = {"keys": list, "models": dict, "settings": dict, "admin": dict}

Stamp = tuple[int, int, int]


class StateFileError(Exception):
    """The state file cannot be used; the message names it and how to restore it."""


def empty_state() -> dict[str, Any]:
    """A fresh, empty state document."""
    return {"version": VERSION, "keys": [], "models": {}, "settings": {}, "admin": {}}


def migrate(doc: dict[str, Any], path: Path) -> dict[str, Any]:
    """Bring a document up to VERSION through MIGRATIONS."""
    version = doc.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise StateFileError(_broken(path, "it has no valid `version` field"))
    if version > VERSION:
        raise StateFileError(
            f"{path} was written by a newer gateway (format version {version}, "
            f"this one reads up to {VERSION}). Upgrade the gateway."
        )
    while version < VERSION:
        doc = MIGRATIONS[version](copy.deepcopy(doc))
        version += 1
        doc["version"] = version
    return doc


def _broken(path: Path, reason: str) -> str:
    """The startup-stopping message for an unusable state file."""
    bak = path.with_name(path.name + ".bak")
    if bak.exists():
        fix = f"To restore the previous good version, stop the gateway and run: cp {bak} {path}"
    else:
        fix = f"There is no backup ({bak} does not exist); repair the file by hand."
    return (
        f"State file {path} is unreadable: {reason}. The gateway refuses to start with it "
        f"rather than run with an empty key list. {fix}"
    )


class StateFile:
    """The state file of one data directory: locked, atomic reads and writes (blocking I/O)."""

    def __init__(self, data_dir: Path | str) -> None:
        self.dir = Path(data_dir)
        self.path = self.dir / STATE_FILE
        self.bak = self.dir / (STATE_FILE + ".bak")

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the exclusive inter-process lock for a read-modify-write."""
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the flock

    def stamp(self) -> Stamp | None:
        """(inode, mtime_ns, size) of the file, or None when it does not exist."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def read(self) -> tuple[dict[str, Any], Stamp | None]:
        """The migrated document and its stamp; a missing file is an empty state."""
        try:
            with open(self.path, "rb") as fh:
                raw = fh.read()
                st = os.fstat(fh.fileno())
        except FileNotFoundError:
            if self.bak.exists():
                raise StateFileError(
                    _broken(self.path, "it is missing but a backup exists")
                ) from None
            return empty_state(), None
        except OSError as exc:
            raise StateFileError(_broken(self.path, f"cannot read it ({exc.strerror})")) from exc
        try:
            doc = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise StateFileError(_broken(self.path, f"it is not valid JSON ({exc})")) from exc
        if not isinstance(doc, dict):
            raise StateFileError(_broken(self.path, "it is not a JSON object"))
        doc = migrate(doc, self.path)
        for section, kind in SECTIONS.items():
            doc.setdefault(section, kind())
            if not isinstance(doc[section], kind):
                raise StateFileError(_broken(self.path, f"`{section}` is not a {kind.__name__}"))
        return doc, (st.st_ino, st.st_mtime_ns, st.st_size)

    def write(self, doc: dict[str, Any]) -> Stamp:
        """Replace the file atomically with `doc`, keeping the previous one as .bak."""
        doc = {**doc, "version": VERSION}
        data = (json.dumps(doc, indent=1, ensure_ascii=False) + "\n").encode("utf-8")
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / f".{STATE_FILE}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        # 0600: the file holds the admin password hash and key hashes.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            self._backup()
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        self._fsync_dir()
        st = os.stat(self.path)
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def _backup(self) -> None:
        """Point state.json.bak at the current (last good) file before it is replaced."""
        if not self.path.exists():
            return
        tmp = self.dir / f".{STATE_FILE}.bak.{os.getpid()}.tmp"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        try:
            os.link(self.path, tmp)  # a hard link: no copy, and the old inode stays intact
        except OSError:
            with open(self.path, "rb") as src, open(tmp, "wb") as dst:
                dst.write(src.read())
                dst.flush()
                os.fsync(dst.fileno())
        try:
            os.replace(tmp, self.bak)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def _fsync_dir(self) -> None:
        """Make the rename durable."""
        fd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def remove_stale_temp_files(self) -> None:
        """Delete temp files left by a crash mid-write (call under the lock)."""
        for p in self.dir.glob(f".{STATE_FILE}.*.tmp"):
            with contextlib.suppress(OSError):
                p.unlink()

    def update(self, fn: Callable[[dict[str, Any]], Any]) -> Any:
        """Locked read-modify-write for the CLI: fn mutates the document; returns fn's result."""
        with self.lock():
            doc, _ = self.read()
            result = fn(doc)
            self.write(doc)
            return result
