"""The in-memory registry of API keys, per-model settings and admin settings.

Where settings live and which wins (highest first):

1. environment variables (`OLLAMA_URL`, `ADMIN_PASSWORD`, ...; see state/config.py SETTINGS);
2. values written in `config.yaml` (re-read without a restart when the file changes; an invalid
   edit is refused with a logged error naming the line and the last good config stays);
3. values set in the admin UI, stored in `<data_dir>/state.json` (only settings marked `admin`
   in the SETTINGS table; one set in env or config.yaml is shown as locked in the admin);
4. the built-in default.

Per model: `config.yaml`'s `models:` entry beats the admin's choices field by field, and for
overrides option by option. At request time: the request beats a model override, which beats
the global `defaults`; a model's `enforce` block beats the request.

Keys, model settings, admin settings and the admin password hash are persisted by
state/writer.py into state/store.py's atomic JSON file.
"""

from __future__ import annotations

import copy
import fnmatch
import hashlib
import hmac
import secrets
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from state.config import SETTINGS_BY_NAME, Config

if TYPE_CHECKING:
    from state.writer import StateWriter

ANONYMOUS_ID = "anonymous"
T = TypeVar("T")


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

    def to_dict(self) -> dict[str, Any]:
        """The stored form (hashes only)."""
        out = asdict(self)
        out["previous"] = [[h, until] for h, until in self.previous]
        return out

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ApiKey:
        """Rebuild from the stored form; raises KeyError/TypeError/ValueError when malformed."""
        data = dict(raw)
        data["previous"] = [(str(h), float(u)) for h, u in data.get("previous", [])]
        key = cls(**data)
        if not (
            isinstance(key.id, str)
            and isinstance(key.secret_hash, str)
            and isinstance(key.models, list)
        ):
            raise TypeError("key id, secret_hash and models have the wrong type")
        return key


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


@dataclass
class RegistryState:
    """Everything persisted: keys, per-model admin settings, admin settings, admin account."""

    keys: dict[str, ApiKey] = field(default_factory=dict)
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    admin: dict[str, Any] = field(default_factory=dict)

    def to_doc(self) -> dict[str, Any]:
        """The JSON document for state/store.py."""
        return {
            "keys": [k.to_dict() for k in self.keys.values()],
            "models": self.models,
            "settings": self.settings,
            "admin": self.admin,
        }

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> RegistryState:
        """Rebuild from a document (a deep copy: nothing is shared with `doc`)."""
        keys = [ApiKey.from_dict(k) for k in doc.get("keys", [])]
        return cls(
            keys={k.id: k for k in keys},
            models=copy.deepcopy(dict(doc["models"])),
            settings=copy.deepcopy(dict(doc["settings"])),
            admin=copy.deepcopy(dict(doc["admin"])),
        )


class Registry:
    """Keys, model settings and admin settings, held in memory and persisted by a writer."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.keys: dict[str, ApiKey] = {}
        self._by_hash: dict[str, str] = {}
        # Values set in the admin, below config.yaml in precedence.
        self.model_state: dict[str, dict[str, Any]] = {}
        self.settings_state: dict[str, Any] = {}
        self.admin_state: dict[str, Any] = {}
        # Seconds between checks of config.yaml and state.json for outside changes.
        self.poll_interval = 1.0
        # Seconds hot counters (last used, request count) wait before being saved.
        self.flush_delay = 2.0
        self.writer: StateWriter | None = None
        # Called after anything that may change an effective setting (a config reload, an
        # admin edit, a state.json written by the CLI): the upstream pool follows ollama_url.
        self.listeners: list[Callable[[], None]] = []

    # -- state ----------------------------------------------------------------------------
    def current(self) -> RegistryState:
        """The live state (shared, not a copy)."""
        return RegistryState(self.keys, self.model_state, self.settings_state, self.admin_state)

    def install(self, state: RegistryState) -> None:
        """Make `state` the live state and rebuild the secret-hash index."""
        self.keys = state.keys
        self.model_state = state.models
        self.settings_state = state.settings
        self.admin_state = state.admin
        by_hash: dict[str, str] = {}
        for key in state.keys.values():
            by_hash[key.secret_hash] = key.id
            # Rotated-out secrets stay findable during their grace period.
            for old, _until in key.previous:
                by_hash.setdefault(old, key.id)
        self._by_hash = by_hash
        self.notify()

    def replace_config(self, config: Config) -> None:
        """Make a newly loaded config.yaml the running config."""
        self.config = config
        self.notify()

    def notify(self) -> None:
        """Tell the listeners that settings may have changed."""
        for listener in self.listeners:
            listener()

    async def mutate(self, op: Callable[[RegistryState], T]) -> T:
        """Apply `op` and return once the change is on disk (op validates before it mutates)."""
        if self.writer is None:
            result = op(self.current())
            self.install(self.current())
            return result
        return await self.writer.submit(op)

    def _apply_now(self, op: Callable[[RegistryState], Any]) -> Any:
        """Apply a change at once and queue it for saving without waiting (sync callers)."""
        result = op(self.current())
        self.install(self.current())
        if self.writer is not None:
            self.writer.submit_nowait(op)
        return result

    def touch(self, key: ApiKey, now: float | None = None) -> None:
        """Count one request on a key; saved debounced, not on every request."""
        if key.id == ANONYMOUS_ID:
            return
        now = time.time() if now is None else now
        live = self.keys.get(key.id)
        if live is not None:
            live.request_count += 1
            live.last_used_at = now
        if self.writer is not None:
            self.writer.count(key.id, now)

    # -- settings -------------------------------------------------------------------------
    def setting(self, name: str) -> Any:
        """Effective value: environment/config.yaml, then the admin's value, then default."""
        if name in self.config.explicit:
            return getattr(self.config, name)
        if name in self.settings_state:
            return self.settings_state[name]
        return SETTINGS_BY_NAME[name].default if name in SETTINGS_BY_NAME else None

    def setting_source(self, name: str) -> str:
        """Where a setting's effective value comes from: config, ui or default."""
        if name in self.config.explicit:
            return "config"
        return "ui" if name in self.settings_state else "default"

    def model_settings(self, ollama_name: str) -> EffectiveModel:
        """The effective settings of one Ollama model (any spelling of its name)."""
        canon = canonical_model(ollama_name)
        ui = self.model_state.get(canon, {})
        cfg = self.model_config(canon)
        overrides = {**ui.get("overrides", {}), **(cfg.overrides if cfg else {})}
        enforce = {**ui.get("enforce", {}), **(cfg.enforce if cfg else {})}
        display = cfg.display_name if cfg and cfg.display_name else ui.get("display_name")
        enabled = cfg.enabled if cfg and cfg.enabled is not None else ui.get("enabled", True)
        mode = cfg.reasoning_output if cfg and cfg.reasoning_output else ui.get("reasoning_output")
        return EffectiveModel(canon, display, bool(enabled), overrides, enforce, mode)

    def model_config(self, ollama_name: str) -> Any:
        """The config.yaml entry for a model (any spelling), or None."""
        canon = canonical_model(ollama_name)
        for name, mc in self.config.models.items():
            if canonical_model(name) == canon:
                return mc
        return None

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

    # -- admin account --------------------------------------------------------------------
    @property
    def admin_password_hash(self) -> str | None:
        """The stored scrypt hash, or None while the default password is in force."""
        value = self.admin_state.get("password_hash")
        return value if isinstance(value, str) else None

    # -- keys -----------------------------------------------------------------------------
    def create_key(self, name: str, models: list[str], **fields: Any) -> tuple[ApiKey, str]:
        """Create a key now (saved in the background); returns it and its secret."""
        key, secret = build_key(name, models, **fields)
        # The queued op inserts its own copy: sharing the live object with the writer's
        # working copy would count requests made during the write twice.
        snapshot = copy.deepcopy(key)
        self._apply_now(lambda s: s.keys.setdefault(key.id, copy.deepcopy(snapshot)))
        return self.keys[key.id], secret

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


def build_key(name: str, models: list[str], **fields: Any) -> tuple[ApiKey, str]:
    """A new key object and its secret (not yet in any registry)."""
    secret = new_secret()
    key = ApiKey(
        id=uuid.uuid4().hex[:12],
        name=name,
        secret_hash=hash_secret(secret),
        masked=mask_secret(secret),
        models=list(models),
        **fields,
    )
    return key, secret


def rotate_key(key: ApiKey, grace: float, now: float | None = None) -> str:
    """Give a key a new secret; the old one stays valid for `grace` seconds. Returns it."""
    now = time.time() if now is None else now
    secret = new_secret()
    keep = [(h, until) for h, until in key.previous if until > now]
    if grace > 0:
        keep.append((key.secret_hash, now + grace))
    key.previous = keep
    key.secret_hash = hash_secret(secret)
    key.masked = mask_secret(secret)
    return secret
