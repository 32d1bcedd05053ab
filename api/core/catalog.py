"""The model catalog: models discovered from Ollama's /api/tags, details from cached /api/show.

Discovery happens at startup (in the background, so a down Ollama does not block the gateway),
whenever the cached list is older than `model_cache_ttl`, and on every cache miss, so a model
pulled a second ago resolves without any manual refresh. Concurrent refreshes share one call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from api.core.errors import APIError
from api.core.upstream import OllamaClient
from state.registry import Registry, canonical_model

log = logging.getLogger(__name__)
SHOW_RETRY_SECONDS = 30.0


@dataclass
class ModelInfo:
    """One model as the gateway knows it."""

    name: str  # the Ollama name as /api/tags spells it, e.g. "llama3.2:latest"
    display_name: str | None = None
    capabilities: list[str] = field(default_factory=list)
    context_length: int | None = None
    parameter_size: str | None = None
    quantization: str | None = None
    family: str | None = None
    size: int | None = None
    modified_at: str | None = None
    digest: str | None = None
    enabled: bool = True
    capabilities_known: bool = False

    @property
    def public_id(self) -> str:
        """The id clients see: the display name when there is one."""
        return self.display_name or self.name

    @property
    def known_capabilities(self) -> set[str] | None:
        """The capabilities, or None when Ollama did not say (then nothing is dropped)."""
        return set(self.capabilities) if self.capabilities_known else None

    @property
    def aliases(self) -> list[str]:
        """Every name that reaches this model (access checks test all of them)."""
        names = [self.name]
        if self.name.endswith(":latest"):
            names.append(self.name[: -len(":latest")])
        if self.display_name:
            names.append(self.display_name)
        return names

    @property
    def created(self) -> int:
        """modified_at as Unix seconds (0 when unknown)."""
        if not self.modified_at:
            return 0
        try:
            return int(datetime.fromisoformat(self.modified_at.replace("Z", "+00:00")).timestamp())
        except ValueError:
            return 0


@dataclass
class _Show:
    """The parts of /api/show the gateway uses."""

    capabilities: list[str]
    context_length: int | None


class ModelCatalog:
    """Models available upstream, with per-model capabilities and context length."""

    def __init__(self, client: OllamaClient, registry: Registry) -> None:
        self.client = client
        self.registry = registry
        self._tags: dict[str, dict[str, Any]] = {}
        self._fetched_at: float | None = None
        self._shows: dict[str, _Show] = {}
        self._failed: dict[str, float] = {}  # digest -> when /api/show last failed
        self._refreshing: asyncio.Task[None] | None = None

    async def refresh(self) -> list[ModelInfo]:
        """Fetch /api/tags now (one call shared by concurrent callers); return all models."""
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.ensure_future(self._fetch_tags())
            # Retrieve the outcome even if every waiter was cancelled (no "never retrieved").
            self._refreshing.add_done_callback(lambda t: t.cancelled() or t.exception())
        await asyncio.shield(self._refreshing)
        return [self._info(name) for name in self._tags]

    async def _fetch_tags(self) -> None:
        data = await self.client.request_json("GET", "/api/tags")
        models = data.get("models")
        tags: dict[str, dict[str, Any]] = {}
        for entry in models if isinstance(models, list) else []:
            name = entry.get("name") or entry.get("model") if isinstance(entry, dict) else None
            if isinstance(name, str) and name:
                tags[canonical_model(name)] = entry
        self._tags = tags
        self._fetched_at = time.monotonic()
        if self.client.version is None:  # for system_fingerprint; a failure is no failure
            with contextlib.suppress(APIError):
                version = (await self.client.request_json("GET", "/api/version")).get("version")
                self.client.version = version if isinstance(version, str) else None

    async def _fresh(self) -> None:
        """Refresh when the list was never fetched or is older than the TTL."""
        ttl = float(self.registry.setting("model_cache_ttl") or 0)
        if self._fetched_at is None or time.monotonic() - self._fetched_at > ttl:
            await self.refresh()

    async def list_models(self) -> list[ModelInfo]:
        """All models (enabled or not), with details from the cached /api/show."""
        await self._fresh()
        names = list(self._tags)
        await asyncio.gather(*(self._show(n) for n in names))
        return [self._info(n) for n in names]

    async def resolve(self, name: str) -> ModelInfo | None:
        """A model by display name or Ollama name (any case, with or without :latest)."""
        if not isinstance(name, str) or not name.strip():
            return None
        await self._fresh()
        canon = self._canonical(name)
        if canon not in self._tags:
            await self.refresh()  # a cache miss always looks again
            canon = self._canonical(name)
            if canon not in self._tags:
                return None
        await self._show(canon)
        return self._info(canon)

    async def capabilities(self, ollama_name: str) -> set[str]:
        """The model's capabilities (empty when unknown)."""
        info = await self.resolve(ollama_name)
        return set(info.capabilities) if info else set()

    def invalidate(self) -> None:
        """Forget everything; the next use fetches again."""
        self._fetched_at = None
        self._shows.clear()
        self._failed.clear()

    def _canonical(self, name: str) -> str:
        """Map a display name or any spelling of an Ollama name to the canonical name."""
        key = name.strip().lower()
        names = self.registry.display_names()
        display = names.get(key) or (
            names.get(key[: -len(":latest")]) if key.endswith(":latest") else None
        )
        return display or canonical_model(name)

    async def _show(self, canon: str) -> _Show | None:
        """/api/show for a model, cached by digest (a re-pulled model is fetched again)."""
        entry = self._tags.get(canon, {})
        key = str(entry.get("digest") or canon)
        cached = self._shows.get(key)
        if cached is not None:
            return cached
        failed = self._failed.get(key)
        if failed is not None and time.monotonic() - failed < SHOW_RETRY_SECONDS:
            return None
        try:
            data = await self.client.request_json(
                "POST", "/api/show", {"model": entry.get("name") or canon}
            )
        except APIError as exc:
            # Remember the failure for a while so a broken model does not cost a call per use.
            log.warning("cannot read details of model %s: %s", canon, exc.message)
            self._failed[key] = time.monotonic()
            return None
        caps = data.get("capabilities")
        found = data.get("model_info")
        info: dict[str, Any] = found if isinstance(found, dict) else {}
        arch = info.get("general.architecture")
        ctx = info.get(f"{arch}.context_length") if isinstance(arch, str) else None
        show = _Show(
            [c for c in caps if isinstance(c, str)] if isinstance(caps, list) else [],
            ctx if isinstance(ctx, int) and not isinstance(ctx, bool) else None,
        )
        self._shows[key] = show
        return show

    def _info(self, canon: str) -> ModelInfo:
        """Combine tags, the cached show and the registry's settings for one model."""
        entry = self._tags.get(canon, {})
        found = entry.get("details")
        details: dict[str, Any] = found if isinstance(found, dict) else {}
        show = self._shows.get(str(entry.get("digest") or canon))
        settings = self.registry.model_settings(canon)
        tag_caps = entry.get("capabilities")
        caps = show.capabilities if show else (list(tag_caps) if isinstance(tag_caps, list) else [])
        ctx = show.context_length if show and show.context_length else details.get("context_length")
        spelled = entry.get("name")
        real = spelled if isinstance(spelled, str) else canon
        return ModelInfo(
            name=real,
            display_name=settings.display_name,
            capabilities=caps,
            context_length=ctx if isinstance(ctx, int) else None,
            parameter_size=details.get("parameter_size"),
            quantization=details.get("quantization_level"),
            family=details.get("family"),
            size=entry.get("size") if isinstance(entry.get("size"), int) else None,
            modified_at=entry.get("modified_at"),
            digest=entry.get("digest"),
            enabled=settings.enabled,
            capabilities_known=show is not None or isinstance(tag_caps, list),
        )


async def startup_refresh(catalog: ModelCatalog) -> None:
    """Discover models at startup; a down Ollama is logged, not fatal."""
    with contextlib.suppress(asyncio.CancelledError):
        try:
            models = await catalog.refresh()
            log.info("discovered %d model(s) at %s", len(models), catalog.client.shown_url)
        except APIError as exc:
            log.warning("model discovery failed: %s", exc.message)
