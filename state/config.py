"""Load config.yaml into a frozen, typed Config; the SETTINGS table is the single reference."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from state.options import OptionError, validate_overrides

REASONING_MODES = ("reasoning_content", "reasoning", "both", "inline", "hidden")


@dataclass(frozen=True, slots=True)
class Setting:
    """One row of the settings reference: name, type, default, env var and help text."""

    name: str
    type: type
    default: Any
    help: str
    env: str | None = None
    choices: tuple[str, ...] = ()
    admin: bool = False  # editable from the admin UI when config.yaml leaves it unset
    maximum: int | None = None  # largest accepted value of a number setting


# Every setting the gateway understands. The README's configuration reference is checked
# against this table by a test, so the two cannot drift.
SETTINGS: tuple[Setting, ...] = (
    Setting("host", str, "0.0.0.0", "Address to listen on.", env="HOST"),
    Setting("port", int, 3000, "Port to listen on.", env="PORT"),
    Setting(
        "ollama_url",
        str,
        "http://localhost:11434",
        "Base URL of the Ollama server.",
        env="OLLAMA_URL",
        admin=True,
    ),
    Setting(
        "data_dir",
        str,
        "./data",
        "Directory for state files, the usage database and "
        "the generated session secret (created on first start).",
        env="DATA_DIR",
    ),
    Setting(
        "session_secret",
        str,
        None,
        "Secret for admin session cookies. Unset: a random "
        "secret is generated once and kept in the data directory.",
        env="SESSION_SECRET",
    ),
    Setting(
        "admin_password",
        str,
        None,
        "Sets the admin password at start (headless installs). "
        "Unset: the stored password, or admin/admin until changed.",
        env="ADMIN_PASSWORD",
    ),
    Setting("admin_username", str, "admin", "Admin login name."),
    Setting(
        "auth",
        str,
        "keys",
        "`keys` requires an API key on /v1; `none` allows keyless use "
        "on a trusted network (logged loudly).",
        choices=("keys", "none"),
    ),
    Setting("connect_timeout", float, 5.0, "Seconds to wait for a connection to Ollama."),
    Setting(
        "read_timeout",
        float,
        600.0,
        "Seconds to wait for Ollama between bytes; a "
        "non-streaming answer arrives whole, so it must fit in this. First loads of large "
        "models take minutes.",
    ),
    Setting(
        "max_body_bytes", int, 20 * 1024 * 1024, "Largest accepted request body; larger is a 413."
    ),
    Setting("image_fetch", bool, True, "Fetch http(s) image URLs in chat messages.", admin=True),
    Setting("image_max_bytes", int, 10 * 1024 * 1024, "Largest image fetched from a URL."),
    Setting("image_timeout", float, 10.0, "Seconds allowed to fetch one image URL."),
    Setting(
        "image_allow_private",
        bool,
        False,
        "Allow image URLs that resolve to private, "
        "loopback or link-local addresses (SSRF guard off).",
    ),
    Setting(
        "reasoning_output",
        str,
        "reasoning_content",
        "How reasoning is returned: "
        "`reasoning_content`, `reasoning`, `both`, `inline` (<think> in content) or "
        "`hidden`. Per model too.",
        choices=REASONING_MODES,
        admin=True,
    ),
    Setting(
        "defaults",
        dict,
        {},
        "Global default Ollama options and gateway parameters "
        "(`think`, `keep_alive`), used when neither the request nor a model override "
        "sets them.",
        admin=True,
    ),
    Setting(
        "models",
        dict,
        {},
        "Per-model settings keyed by Ollama name: `display_name`, "
        "`enabled`, `overrides`, `enforce`, `reasoning_output`.",
    ),
    Setting(
        "key_rotation_grace",
        int,
        86400,
        "Seconds an old key secret keeps working after rotation.",
        admin=True,
    ),
    Setting(
        "model_cache_ttl",
        float,
        60.0,
        "Seconds the model list from Ollama is cached (a miss always refreshes).",
    ),
    Setting(
        "cookie_secure",
        str,
        "auto",
        "`auto` (Secure when served over https), `always` or `never`.",
        choices=("auto", "always", "never"),
    ),
    Setting(
        "trust_proxy",
        bool,
        False,
        "Trust X-Forwarded-Proto and X-Forwarded-For from a reverse proxy.",
    ),
    Setting("session_idle_minutes", int, 60, "Admin sessions expire after this much idle time."),
    Setting(
        "log_format",
        str,
        "text",
        "`text` or `json` (one JSON object a line).",
        env="LOG_FORMAT",
        choices=("text", "json"),
    ),
    Setting(
        "log_level",
        str,
        "info",
        "`debug`, `info`, `warning` or `error`.",
        env="LOG_LEVEL",
        choices=("debug", "info", "warning", "error"),
    ),
    Setting(
        "metrics_token",
        str,
        None,
        "Bearer token required on /metrics; unset: open.",
        env="METRICS_TOKEN",
    ),
    Setting(
        "usage_retention_days",
        int,
        90,
        "Usage rows older than this are pruned (0 keeps all).",
        admin=True,
    ),
    Setting(
        "usage_retention_rows",
        int,
        1_000_000,
        "At most this many usage rows are kept (0 keeps all).",
        admin=True,
    ),
    Setting(
        "content_logging",
        bool,
        False,
        "Store prompt and response text with usage rows.",
        admin=True,
    ),
    Setting(
        "content_retention_days",
        int,
        7,
        "Stored prompt/response text is erased after this many days.",
        admin=True,
    ),
    Setting(
        "response_retention_days",
        int,
        30,
        "Days a stored Responses API response "
        "(store: true) is kept for previous_response_id and GET /v1/responses/{id}; 0 keeps "
        "nothing.",
        admin=True,
        maximum=3650,
    ),
    Setting(
        "shutdown_timeout", float, 30.0, "Seconds in-flight requests get to finish on SIGTERM."
    ),
)
SETTINGS_BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}
MODEL_FIELDS = ("display_name", "enabled", "overrides", "enforce", "reasoning_output")


class ConfigError(ValueError):
    """A config.yaml problem, with the file and line where known."""


@dataclass(frozen=True, slots=True)
class ModelConfig:
    """Per-model settings from config.yaml."""

    display_name: str | None = None
    enabled: bool | None = None
    overrides: Mapping[str, Any] = field(default_factory=dict)
    enforce: Mapping[str, Any] = field(default_factory=dict)
    reasoning_output: str | None = None


@dataclass(frozen=True, slots=True)
class Config:
    """The loaded configuration. `explicit` names the settings that config.yaml or env set."""

    host: str = "0.0.0.0"
    port: int = 3000
    ollama_url: str = "http://localhost:11434"
    data_dir: str = "./data"
    session_secret: str | None = None
    admin_password: str | None = None
    admin_username: str = "admin"
    auth: str = "keys"
    connect_timeout: float = 5.0
    read_timeout: float = 600.0
    max_body_bytes: int = 20 * 1024 * 1024
    image_fetch: bool = True
    image_max_bytes: int = 10 * 1024 * 1024
    image_timeout: float = 10.0
    image_allow_private: bool = False
    reasoning_output: str = "reasoning_content"
    defaults: Mapping[str, Any] = field(default_factory=dict)
    models: Mapping[str, ModelConfig] = field(default_factory=dict)
    key_rotation_grace: int = 86400
    model_cache_ttl: float = 60.0
    cookie_secure: str = "auto"
    trust_proxy: bool = False
    session_idle_minutes: int = 60
    log_format: str = "text"
    log_level: str = "info"
    metrics_token: str | None = None
    usage_retention_days: int = 90
    usage_retention_rows: int = 1_000_000
    content_logging: bool = False
    content_retention_days: int = 7
    response_retention_days: int = 30
    shutdown_timeout: float = 30.0
    path: str | None = None
    explicit: frozenset[str] = frozenset()

    @property
    def data_path(self) -> Path:
        """The data directory as a Path."""
        return Path(self.data_dir)

    def replace(self, **changes: Any) -> Config:
        """A copy with some settings changed (and marked explicit)."""
        explicit = self.explicit | {k for k in changes if k in SETTINGS_BY_NAME}
        return dataclasses.replace(self, explicit=explicit, **changes)


def _check_value(setting: Setting, value: Any, where: str) -> Any:
    """Check and coerce one setting's value; raise ConfigError naming it."""
    if value is None:
        if setting.default is None:
            return None
        raise ConfigError(f"{where}: `{setting.name}` must not be empty")
    t = setting.type
    if t is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if t is bool and not isinstance(value, bool):
        raise ConfigError(f"{where}: `{setting.name}` must be true or false, got {value!r}")
    if t is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"{where}: `{setting.name}` must be an integer, got {value!r}")
    if t in (str, dict, float) and not isinstance(value, t):
        raise ConfigError(f"{where}: `{setting.name}` must be a {t.__name__}, got {value!r}")
    if setting.choices and value not in setting.choices:
        raise ConfigError(
            f"{where}: `{setting.name}` must be one of {', '.join(setting.choices)}; got {value!r}"
        )
    if t in (int, float) and value < 0:
        raise ConfigError(f"{where}: `{setting.name}` must not be negative")
    if setting.maximum is not None and value > setting.maximum:
        raise ConfigError(f"{where}: `{setting.name}` must be at most {setting.maximum}")
    return value


def _parse_env(setting: Setting, raw: str) -> Any:
    """Convert an environment variable's text to the setting's type."""
    where = f"environment variable {setting.env}"
    try:
        if setting.type is int:
            return _check_value(setting, int(raw), where)
        if setting.type is float:
            return _check_value(setting, float(raw), where)
        if setting.type is bool:
            return _check_value(setting, raw.strip().lower() in ("1", "true", "yes", "on"), where)
    except ValueError as exc:
        raise ConfigError(f"{where}: not a valid {setting.type.__name__}: {raw!r}") from exc
    return _check_value(setting, raw, where)


def _model_config(name: str, raw: Any, where: str) -> ModelConfig:
    """Validate one entry under `models:`."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: models.{name} must be a mapping")
    unknown = set(raw) - set(MODEL_FIELDS)
    if unknown:
        raise ConfigError(
            f"{where}: models.{name}: unknown field(s) {', '.join(sorted(unknown))}"
            f" (known: {', '.join(MODEL_FIELDS)})"
        )
    display = raw.get("display_name")
    if display is not None and (not isinstance(display, str) or not display.strip()):
        raise ConfigError(f"{where}: models.{name}.display_name must be a non-empty string")
    enabled = raw.get("enabled")
    if enabled is not None and not isinstance(enabled, bool):
        raise ConfigError(f"{where}: models.{name}.enabled must be true or false")
    mode = raw.get("reasoning_output")
    if mode is not None and mode not in REASONING_MODES:
        raise ConfigError(
            f"{where}: models.{name}.reasoning_output must be one of {', '.join(REASONING_MODES)}"
        )
    blocks: dict[str, dict[str, Any]] = {}
    for block in ("overrides", "enforce"):
        value = raw.get(block) or {}
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: models.{name}.{block} must be a mapping")
        try:
            blocks[block] = validate_overrides(value)
        except OptionError as exc:
            raise ConfigError(f"{where}: models.{name}.{block}: {exc}") from exc
    return ModelConfig(display, enabled, blocks["overrides"], blocks["enforce"], mode)


def _line_of(text: str, key: str) -> int | None:
    """The 1-based line where a top-level key is written, for error messages."""
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith(f"{key}:"):
            return number
    return None


def parse_config(
    text: str, path: str | None = None, env: Mapping[str, str] | None = None
) -> Config:
    """Parse config.yaml text plus environment overrides into a Config."""
    name = path or "config.yaml"
    try:
        raw = yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{name}{line}: invalid YAML: {getattr(exc, 'problem', exc)}") from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{name}: the top level must be a mapping of setting: value")
    values: dict[str, Any] = {}
    for key, value in raw.items():
        lineno = _line_of(text, str(key))
        where = f"{name} line {lineno}" if lineno else name
        setting = SETTINGS_BY_NAME.get(str(key))
        if setting is None:
            raise ConfigError(f"{where}: unknown setting `{key}`")
        if key == "models":
            models = value or {}
            if not isinstance(models, dict):
                raise ConfigError(f"{where}: `models` must be a mapping of model name to settings")
            values["models"] = {str(m): _model_config(str(m), v, where) for m, v in models.items()}
        elif key == "defaults":
            defaults = value or {}
            if not isinstance(defaults, dict):
                raise ConfigError(f"{where}: `defaults` must be a mapping")
            try:
                values["defaults"] = validate_overrides(defaults)
            except OptionError as exc:
                raise ConfigError(f"{where}: defaults: {exc}") from exc
        else:
            values[str(key)] = _check_value(setting, value, where)
    for setting in SETTINGS:
        if setting.env and env is not None and env.get(setting.env):
            values[setting.name] = _parse_env(setting, env[setting.env])
    if "ollama_url" in values:
        values["ollama_url"] = values["ollama_url"].rstrip("/")
    return Config(path=path, explicit=frozenset(values) - {"models"}, **values)


def load_config(
    path: str | os.PathLike[str] | None, env: Mapping[str, str] | None = None
) -> Config:
    """Read config.yaml from `path` (a missing default file means all defaults)."""
    env = os.environ if env is None else env
    if path is None:
        return parse_config("", None, env)
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{p}: config file not found") from None
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read config file: {exc}") from exc
    return parse_config(text, str(p), env)
