"""The in-memory registry of API keys, per-model settings and admin settings."""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import secrets
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from state.config import SETTINGS_BY_NAME, Config

ANONYMOUS_ID = "anonymous"


def hash_secret(secret: str) -> str:
    """SHA-256 of a key secret. Keys carry 190+ bits of randomness, so a fast hash suffices."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def mask_secret(secret: str) -> str:
    """The form shown in lists: `sk-abc…wxyz`."""
    return f"{secret[:6]}…{secret[-4:]}"


def new_secret() -> str:
    """A new key secret: `sk-` and 43 URL-safe random characters."""
    return "sk-" + secrets.token_urlsafe(32)


def canonical_model(name: str) -> str:
    """Ollama's canonical form of a model name: lower case, with `:latest` when untagged."""
    name = name.strip().lower()
    last = name.rsplit("/", 1)[-1]
    return name if ":" in last else name + ":latest"


def model_aliases(name: str) -> set[str]:
    """The spellings of one model name that must be treated alike (with/without :latest)."""
    canon = canonical_model(name)
    names = {canon}
    if canon.endswith(":latest"):
        names.add(canon[: -len(":latest")])
    return names


@dataclass
class ApiKey:
    """One API key. Only the hash of its secret is kept."""

    id: str
    name: str
    secret_hash: str
    masked: str
    models: list[str] = field(default_factory=lambda: ["*"])
    enabled: bool = True
    expires_at: float | None = None
    rpm: int | None = None
    tpm: int | None = None
    max_concurrency: int | None = None
    notes: str = ""
    created_at: float = field(default_factory=time.time)
    last_used_at: float | None = None
    request_count: int = 0
    # (hash, valid-until) pairs of rotated-out secrets still inside their grace period.
    previous: list[tuple[str, float]] = field(default_factory=list)

    def allows(self, names: Iterable[str]) -> bool:
        """True if any of the model's names matches one of this key's patterns."""
        patterns = [p.strip().lower() for p in self.models]
        return any(fnmatch.fnmatchcase(n.lower(), p) for n in names for p in patterns)


class AuthError(Exception):
    """A /v1 request without a usable key; `reason` is missing/unknown/disabled/expired."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True, slots=True)
class EffectiveModel:
    """A model's settings after layering config.yaml over the admin's choices."""

    ollama_name: str
    display_name: str | None
    enabled: bool
    overrides: Mapping[str, Any]
    enforce: Mapping[str, Any]
    reasoning_output: str | None


class Registry:
    """Keys, model settings and admin settings, held in memory."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.keys: dict[str, ApiKey] = {}
        self._by_hash: dict[str, str] = {}
        # Values set in the admin, below config.yaml in precedence.
        self.model_state: dict[str, dict[str, Any]] = {}
        self.settings_state: dict[str, Any] = {}

    # -- settings -------------------------------------------------------------------------
    def setting(self, name: str) -> Any:
        """Effective value: environment/config.yaml, then the admin's value, then default."""
        if name in self.config.explicit:
            return getattr(self.config, name)
        if name in self.settings_state:
            return self.settings_state[name]
        return SETTINGS_BY_NAME[name].default if name in SETTINGS_BY_NAME else None

    def model_settings(self, ollama_name: str) -> EffectiveModel:
        """The effective settings of one Ollama model (any spelling of its name)."""
        canon = canonical_model(ollama_name)
        ui = self.model_state.get(canon, {})
        cfg = None
        for name, mc in self.config.models.items():
            if canonical_model(name) == canon:
                cfg = mc
                break
        overrides = {**ui.get("overrides", {}), **(cfg.overrides if cfg else {})}
        enforce = {**ui.get("enforce", {}), **(cfg.enforce if cfg else {})}
        display = cfg.display_name if cfg and cfg.display_name else ui.get("display_name")
        enabled = cfg.enabled if cfg and cfg.enabled is not None else ui.get("enabled", True)
        mode = cfg.reasoning_output if cfg and cfg.reasoning_output else \
            ui.get("reasoning_output")
        return EffectiveModel(canon, display, bool(enabled), overrides, enforce, mode)

    def display_names(self) -> dict[str, str]:
        """Lower-cased display name -> canonical Ollama name."""
        out: dict[str, str] = {}
        for name, state in self.model_state.items():
            if state.get("display_name"):
                out[str(state["display_name"]).lower()] = name
        for name, mc in self.config.models.items():
            if mc.display_name:
                out[mc.display_name.lower()] = canonical_model(name)
        return out

    # -- keys -----------------------------------------------------------------------------
    def create_key(self, name: str, models: list[str], **fields: Any) -> tuple[ApiKey, str]:
        """Create a key; returns it and its secret (the only time the secret exists)."""
        secret = new_secret()
        key = ApiKey(id=uuid.uuid4().hex[:12], name=name, secret_hash=hash_secret(secret),
                     masked=mask_secret(secret), models=list(models), **fields)
        self.keys[key.id] = key
        self._by_hash[key.secret_hash] = key.id
        return key, secret

    def authenticate(self, secret: str | None, now: float | None = None) -> ApiKey:
        """The key for a presented secret, or AuthError saying why not (never echoing it)."""
        if self.setting("auth") == "none":
            return ApiKey(id=ANONYMOUS_ID, name="anonymous", secret_hash="", masked="")
        if not secret:
            raise AuthError("missing", "Missing API key: send 'Authorization: Bearer sk-…'.")
        now = time.time() if now is None else now
        digest = hash_secret(secret)
        key_id = self._by_hash.get(digest)
        key = self.keys.get(key_id) if key_id else None
        if key is None or not self._matches(key, digest, now):
            raise AuthError("unknown", "Invalid API key: no such key.")
        if not key.enabled:
            raise AuthError("disabled", f"API key '{key.name}' is disabled.")
        if key.expires_at is not None and key.expires_at <= now:
            raise AuthError("expired", f"API key '{key.name}' has expired.")
        return key

    @staticmethod
    def _matches(key: ApiKey, digest: str, now: float) -> bool:
        """Constant-time check of the digest against the key's current or grace secrets."""
        ok = hmac.compare_digest(key.secret_hash, digest)
        for old, until in key.previous:
            ok |= hmac.compare_digest(old, digest) and until > now
        return ok
