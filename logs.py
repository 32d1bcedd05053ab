"""Logging setup: human-readable text or JSON lines on stdout."""

from __future__ import annotations

import logging
import sys

from state.config import Config


def setup_logging(config: Config) -> None:
    """Configure the root logger from the config."""
    logging.basicConfig(stream=sys.stdout, level=config.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
