"""Command line for headless setups: `python gateway.py keys …` and `admin set-password`.

Safe while the server runs: every command is a locked read-modify-write of state.json (the
same fcntl lock the server's writer takes), and the server notices the changed file within
about a second (and always before its own next write), so neither side loses the other's
changes.
"""

from __future__ import annotations

import argparse
import getpass
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from state.config import Config
from state.keyfields import FieldError, check_fields, iso
from state.registry import ApiKey, RegistryState, build_key
from state.secrets import hash_password, password_problems
from state.store import StateFile, StateFileError
from state.writer import decode_state

T = TypeVar("T")


def _parser() -> argparse.ArgumentParser:
    """The CLI's argument parser."""
    parser = argparse.ArgumentParser(
        prog="gateway.py",
        description="Manage keys and the admin account without the web admin (safe while it runs).",
    )
    groups = parser.add_subparsers(dest="group", required=True)
    keys = groups.add_parser("keys", help="API keys").add_subparsers(dest="cmd", required=True)
    create = keys.add_parser("create", help="create a key; the secret is the last line")
    create.add_argument("name")
    create.add_argument(
        "--models",
        required=True,
        help="comma-separated model names or patterns, e.g. 'llama3.2,qwen3*' or '*' for all",
    )
    create.add_argument("--rpm", help="requests per minute")
    create.add_argument("--tpm", help="tokens per minute")
    create.add_argument("--max-concurrency", help="requests at the same time")
    create.add_argument("--expires-at", help="ISO 8601 date/time, e.g. 2027-01-31T18:00Z")
    create.add_argument("--notes", help="free text")
    keys.add_parser("list", help="list keys (secrets are never shown)")
    revoke = keys.add_parser("revoke", help="delete a key; it stops working at once")
    revoke.add_argument("key", metavar="ID", help="key id (or its unique name)")
    admin = groups.add_parser("admin", help="admin account").add_subparsers(
        dest="cmd", required=True
    )
    setpw = admin.add_parser("set-password", help="set the admin password")
    setpw.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of stdin",
    )
    return parser


def _update(config: Config, op: Callable[[RegistryState], T]) -> T:
    """Locked read-modify-write of the state file through registry state."""
    store = StateFile(config.data_path)

    def fn(doc: dict[str, Any]) -> T:
        state = decode_state(doc, store)
        result = op(state)
        doc.update(state.to_doc())
        return result

    result: T = store.update(fn)
    return result


def _create(config: Config, args: argparse.Namespace) -> int:
    """keys create."""
    raw = {
        "name": args.name,
        "models": args.models,
        "rpm": args.rpm,
        "tpm": args.tpm,
        "max_concurrency": args.max_concurrency,
        "expires_at": args.expires_at,
        "notes": args.notes,
    }
    fields = check_fields({k: v for k, v in raw.items() if v is not None}, creating=True)
    key, secret = build_key(fields.pop("name"), fields.pop("models"), **fields)

    def op(state: RegistryState) -> None:
        for other in state.keys.values():
            if other.name.lower() == key.name.lower():
                raise FieldError("name", f"A key named '{other.name}' already exists.")
        state.keys[key.id] = key

    _update(config, op)
    limits = ", ".join(
        f"{n}={getattr(key, n)}"
        for n in ("rpm", "tpm", "max_concurrency")
        if getattr(key, n) is not None
    )
    print(
        f"Created key {key.id} '{key.name}' for models {','.join(key.models)}"
        + (f" ({limits})" if limits else "")
        + (f", expires {iso(key.expires_at)}" if key.expires_at else "")
        + "."
    )
    print("The secret is shown only now; store it safely:")
    print(secret)
    return 0


def _list(config: Config) -> int:
    """keys list."""
    store = StateFile(config.data_path)
    doc, _ = store.read()
    keys = decode_state(doc, store).keys.values()
    if not keys:
        print("No keys.")
        return 0
    now = time.time()
    rows = [("ID", "NAME", "KEY", "MODELS", "STATUS", "LAST USED", "REQUESTS")]
    for k in keys:
        status = (
            "disabled"
            if not k.enabled
            else "expired"
            if k.expires_at is not None and k.expires_at <= now
            else "active"
        )
        rows.append(
            (
                k.id,
                k.name,
                k.masked,
                ",".join(k.models),
                status,
                iso(k.last_used_at) or "never",
                str(k.request_count),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return 0


def _revoke(config: Config, ident: str) -> int:
    """keys revoke."""

    def op(state: RegistryState) -> ApiKey:
        key = state.keys.get(ident)
        if key is None:
            named = [k for k in state.keys.values() if k.name.lower() == ident.lower()]
            if len(named) != 1:
                raise FieldError("key", f"No key with id or name '{ident}'.")
            key = named[0]
        del state.keys[key.id]
        return key

    key = _update(config, op)
    print(f"Revoked key {key.id} '{key.name}' ({key.masked}); it is refused from now on.")
    return 0


def _set_password(config: Config, args: argparse.Namespace) -> int:
    """admin set-password."""
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("New admin password: ")
        if getpass.getpass("Repeat it: ") != password:
            print("error: the two passwords differ; nothing changed.", file=sys.stderr)
            return 2
    problem = password_problems(password, config.admin_username)
    if problem:
        print(f"error: {problem} Nothing changed.", file=sys.stderr)
        return 2
    digest = hash_password(password)

    def op(state: RegistryState) -> None:
        state.admin["password_hash"] = digest

    _update(config, op)
    print("Admin password changed; signed-in browser sessions end.")
    if config.admin_password:
        print(
            "note: ADMIN_PASSWORD / admin_password in config.yaml is set and replaces this "
            "password when the gateway next starts.",
            file=sys.stderr,
        )
    return 0


def run_cli(config: Config, argv: Sequence[str]) -> int:
    """Run one CLI command; returns the exit status."""
    args = _parser().parse_args(list(argv))
    try:
        if args.group == "keys" and args.cmd == "create":
            return _create(config, args)
        if args.group == "keys" and args.cmd == "list":
            return _list(config)
        if args.group == "keys" and args.cmd == "revoke":
            return _revoke(config, args.key)
        return _set_password(config, args)
    except FieldError as exc:
        flag = (
            "--" + exc.field.replace("_", "-")
            if exc.field not in ("name", "key")
            else exc.field.upper()
        )
        print(f"error: {flag}: {exc.message}", file=sys.stderr)
        return 2
    except StateFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: cannot use the data directory {config.data_dir}: {exc}", file=sys.stderr)
        return 1
