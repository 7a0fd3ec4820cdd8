"""``mlq keys``: API keys of the HTTP API. The secret is shown once, at creation; only its
sha256 is stored.

Usage::

    mlq keys create --scopes predict,feedback --name "web shop"
    mlq keys list
    mlq keys revoke 3
"""

from __future__ import annotations

import getpass
import socket

import click

from shared.cli_output import emit, json_option, say, table

COLUMNS = (
    ("id", "id"),
    ("name", "name"),
    ("prefix", "starts with"),
    ("scopes", "scopes"),
    ("created_at", "created"),
    ("revoked_at", "revoked"),
)


@click.group()
def keys() -> None:
    """API keys of the HTTP API (`mlq serve`)."""


@keys.command("create")
@click.option(
    "--scopes",
    required=True,
    metavar="S,S",
    help="Comma-separated: predict (predictions, batches), feedback, admin (models, A/B tests).",
)
@click.option("--name", default="", help="What the key is for, shown by `mlq keys list`.")
@json_option
def create(scopes: str, name: str) -> None:
    """Create a key and print its secret: the only time it is shown."""
    from shared.db.api_keys import create_key
    from shared.db.engine import session_scope

    wanted = [s.strip() for s in scopes.split(",") if s.strip()]
    with session_scope() as session:
        secret, info = create_key(
            session,
            name=name,
            scopes=wanted,
            created_by=f"{getpass.getuser()}@{socket.gethostname()}",
        )
    emit({**info.as_dict(), "secret": secret}, secret)
    say(
        f"key #{info.id} ({', '.join(sorted(info.scopes))}): "
        "keep the secret now, it is not shown again"
    )


@keys.command("list")
@json_option
def list_command() -> None:
    """Every key: id, name, first characters, scopes, created and revoked (no secrets)."""
    from shared.db.api_keys import list_keys
    from shared.db.engine import session_scope

    with session_scope() as session:
        found = list_keys(session)
    listed = [key.as_dict() for key in found]
    shown = [{**key.as_dict(), "scopes": ",".join(sorted(key.scopes))} for key in found]
    emit(listed, table(shown, COLUMNS) if listed else "")
    if not listed:
        say("no API keys: `mlq keys create --scopes predict`")


@keys.command("revoke")
@click.argument("key_id", type=int)
@json_option
def revoke(key_id: int) -> None:
    """Revoke a key: refused by every server within 5 s. Exits 4 for an unknown id."""
    from shared.db.api_keys import revoke_key
    from shared.db.engine import session_scope

    with session_scope() as session:
        info = revoke_key(session, key_id=key_id)
    emit(info.as_dict(), f"key #{info.id} revoked")
