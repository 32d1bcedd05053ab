"""Logging setup: human-readable text or JSON lines on stdout, with the request id."""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar

from state.config import Config

# The X-Request-ID of the request being handled; set by the /v1 and admin pipelines.
request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)


def setup_logging(config: Config) -> None:
    """Configure the root logger from the config."""
    logging.basicConfig(stream=sys.stdout, level=config.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
