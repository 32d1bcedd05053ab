"""ollama2openai: an OpenAI-compatible gateway for Ollama. Entry point and app factory."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from aiohttp import web

from api import setup_api
from api.ops import setup_ops
from appkeys import CONFIG
from state import setup_state
from state.config import Config, ConfigError, load_config
from web import setup_admin

log = logging.getLogger("gateway")
DEFAULT_CONFIG = "config.yaml"


def create_app(config: Config) -> web.Application:
    """Build the application; no I/O happens here (it runs in cleanup_ctx at startup)."""
    app = web.Application(client_max_size=config.max_body_bytes)
    app[CONFIG] = config
    setup_state(app)
    setup_api(app)
    setup_admin(app)
    setup_ops(app)
    return app


def _config_path(arg: str | None) -> str | None:
    """The config file to read: --config, else ./config.yaml when it exists."""
    if arg:
        return arg
    return DEFAULT_CONFIG if os.path.exists(DEFAULT_CONFIG) else None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server, or a CLI command (`keys …`, `admin …`)."""
    parser = argparse.ArgumentParser(prog="gateway.py", description=__doc__)
    parser.add_argument("--config", metavar="PATH", help="config file (default ./config.yaml)")
    args, rest = parser.parse_known_args(argv)
    try:
        config = load_config(_config_path(args.config))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if rest:
        from cli import run_cli

        return run_cli(config, rest)
    from logs import setup_logging

    setup_logging(config)
    app = create_app(config)
    web.run_app(app, host=config.host, port=config.port, print=None,
                shutdown_timeout=config.shutdown_timeout, access_log=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
