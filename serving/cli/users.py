"""``expansion users``: who may sign in to the pages (tokens stored hashed beside the CRM scores)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer

from serving.cli.common import console, fail, settings

users_app = typer.Typer(help="People who may sign in to the pages (/ui): CSMs and CS leaders.", no_args_is_help=True)


def add_user(name: str, role: str, csm_owner: str | None = None, uri: str | None = None) -> str:
    """Create ``name`` (or issue them a new token, which revokes the old one); returns the token."""
    from serving.web.store import WebStore

    store = WebStore(uri or settings().crm_uri)
    try:
        return store.add_user(name, role, csm_owner, dt.datetime.now(dt.UTC))
    finally:
        store.close()


@users_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="The person's name, as shown on the pages.")],
    role: Annotated[str, typer.Option("--role", help="csm (their book) or leader (every book and the leadership page).")],
    csm_owner: Annotated[str | None, typer.Option("--csm-owner", help="The accounts' csm_owner value that is this "
                                                  "CSM's book (default: the name).")] = None,
) -> None:
    """Let a person sign in; prints their sign-in token once (only its hash is stored)."""
    from serving.web.store import StoreError

    try:
        token = add_user(name, role, csm_owner)
    except StoreError as exc:
        fail(str(exc))
    console.print(f"{name} ({role}) may sign in at /ui/signin with this token (shown once):", highlight=False)
    console.print(token, highlight=False, soft_wrap=True)


@users_app.command("list")
def list_users() -> None:
    """Everyone who may sign in (names, roles and books; never tokens)."""
    from serving.web.store import WebStore

    store = WebStore(settings().crm_uri)
    try:
        for user in store.list_users():
            console.print(f"{user['name']}\t{user['role']}\t{user['csm_owner'] or '-'}", highlight=False)
    finally:
        store.close()


def register(app: typer.Typer) -> None:
    app.add_typer(users_app, name="users")


def print_demo_sign_in(home: object, data: object, port: int = 3000, extra_env: str = "") -> str:
    """The demo's last lines: how to start the service with the pages, their URL and a leader's sign-in token."""
    token = add_user("demo-leader", "leader", None, settings().crm_uri)
    console.print(
        "Open the pages (a CSM's book, accounts, the leadership page) in a browser:\n"
        f"  EXPANSION_HOME={home} EXPANSION_DATA_DIR={data} EXPANSION_API_KEY=demo-key {extra_env}"
        f".venv/bin/expansion serve --port {port}\n"
        f"  URL:   http://127.0.0.1:{port}/ui/signin\n"
        f"  token: {token}   (demo-leader, a leader: every book and the leadership page)",
        highlight=False, soft_wrap=True,
    )
    return token
