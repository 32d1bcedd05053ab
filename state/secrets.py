"""Admin password hashing (scrypt) and the session secret kept in the data directory."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_PASSWORD = "admin"
MIN_PASSWORD_LENGTH = 8
SESSION_SECRET_FILE = "session_secret"
# scrypt cost: n=2**14, r=8 takes ~16 MiB and ~50 ms, the usual interactive-login setting.
_N, _R, _P, _DKLEN = 2**14, 8, 1, 32


def hash_password(password: str) -> str:
    """A self-describing scrypt hash: `scrypt$n$r$p$salt$hash` (base64 parts)."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=_N, r=_R, p=_P, dklen=_DKLEN)
    b64 = base64.urlsafe_b64encode
    return f"scrypt${_N}${_R}${_P}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    """Check a password against a stored scrypt hash, comparing in constant time."""
    try:
        scheme, n, r, p, salt_b64, digest_b64 = stored.split("$")
        if scheme != "scrypt":
            return False
        salt = base64.urlsafe_b64decode(salt_b64)
        expected = base64.urlsafe_b64decode(digest_b64)
        digest = hashlib.scrypt(
            password.encode("utf-8"), salt=salt, n=int(n), r=int(r), p=int(p), dklen=len(expected)
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(digest, expected)


def password_problems(new: str, username: str) -> str | None:
    """Why a new admin password is not acceptable, or None."""
    if len(new) < MIN_PASSWORD_LENGTH:
        return f"The new password must be at least {MIN_PASSWORD_LENGTH} characters long."
    if new == DEFAULT_PASSWORD or new.lower() == username.lower():
        return "Choose a password other than the default or the user name."
    return None


def session_key(configured: str | None, data_dir: Path) -> bytes:
    """The Fernet key for session cookies: from SESSION_SECRET, else a generated file (0600)."""
    if configured:
        # Any string works as SESSION_SECRET; stretch it to Fernet's 32-byte key.
        return base64.urlsafe_b64encode(hashlib.sha256(configured.encode("utf-8")).digest())
    path = data_dir / SESSION_SECRET_FILE
    try:
        raw = path.read_text(encoding="ascii").strip()
        key = base64.urlsafe_b64decode(raw)
        if len(key) == 32:
            return raw.encode("ascii")
        log.warning("%s does not hold a valid key; generating a new one", path)
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as exc:
        log.warning("cannot read %s (%s); generating a new session secret", path, exc)
    data_dir.mkdir(parents=True, exist_ok=True)
    raw = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode("ascii")
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(raw + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    log.info("generated a new session secret in %s", path)
    return raw.encode("ascii")


async def set_admin_password(registry: Any, password: str) -> None:
    """Hash (off the loop) and store a new admin password; returns once it is on disk."""
    import asyncio

    digest = await asyncio.get_running_loop().run_in_executor(None, hash_password, password)

    def op(state: Any) -> None:
        state.admin["password_hash"] = digest

    await registry.mutate(op)


async def apply_configured_password(registry: Any) -> None:
    """ADMIN_PASSWORD / config `admin_password` replaces the stored password at start."""
    import asyncio

    wanted = registry.config.admin_password
    if not wanted:
        return
    if wanted == DEFAULT_PASSWORD:
        log.warning(
            "ADMIN_PASSWORD is the default 'admin'; it is ignored and the admin must "
            "still change the password"
        )
        return
    stored = registry.admin_password_hash
    if stored is not None:
        loop = asyncio.get_running_loop()
        if await loop.run_in_executor(None, verify_password, wanted, stored):
            return
    await set_admin_password(registry, wanted)
    log.info("admin password set from ADMIN_PASSWORD / config admin_password")
