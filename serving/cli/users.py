"""``expansion users``: who may sign in to the pages (tokens stored hashed in the product store, EXPANSION_STORE_URI)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer

from features.config import Settings
from serving.cli.common import console, fail, settings

users_app = typer.Typer(help="People who may sign in to the pages (/ui): CSMs and CS leaders.", no_args_is_help=True)


def add_user(name: str, role: str, csm_owner: str | None = None, uri: str | Settings | None = None) -> str:
    """Create ``name`` (or issue them a new token, which revokes the old one); returns the token."""
    from serving.web.store import WebStore

    store = WebStore(uri or settings())
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
    if role == "csm":
        owner = csm_owner or name
        cfg = settings()
        owned = owned_accounts(owner, cfg.snapshot_file, cfg.data_dir)
        if owned == 0:
            console.print(f"warning: --csm-owner {owner!r} owns no account in the served snapshot or the data; "
                          f"{name}'s book will be empty until accounts carry that csm_owner.", style="yellow",
                          highlight=False)
        elif owned is None:
            console.print(f"note: no snapshot or data folder to check that {owner!r} owns accounts.", highlight=False)
    console.print(f"{name} ({role}) may sign in at /ui/signin with this token (shown once):", highlight=False)
    console.print(token, highlight=False, soft_wrap=True)


def owned_accounts(csm_owner: str, snapshot: Path | None, data_dir: Path | None) -> int | None:
    """How many accounts ``csm_owner`` owns in the served snapshot (else the data's ``accounts``); None when
    neither can be read."""
    import pandas as pd

    if snapshot is not None and snapshot.is_file():
        frame = pd.read_parquet(snapshot, columns=["account_id", "csm_owner"])
        return int(frame.drop_duplicates("account_id")["csm_owner"].astype("string").eq(csm_owner).fillna(False).sum())
    if data_dir is not None and Path(data_dir).is_dir():
        from features.io import open_data

        source = open_data(data_dir)
        try:
            if source.has("accounts"):
                return int(source.con.execute("SELECT count(*) FROM accounts WHERE csm_owner = ?", [csm_owner]).fetchone()[0])
        finally:
            source.close()
    return None


def change_user(name: str, action: str, uri: str | None = None) -> None:
    """``disable`` (refuse their token, end their sessions) or ``remove`` (delete them and their sessions)."""
    from serving.web.store import WebStore

    store = WebStore(uri or settings())
    try:
        (store.disable_user if action == "disable" else store.remove_user)(name)
    finally:
        store.close()


def _change_command(name: str, action: str, done: str) -> None:
    from serving.web.store import StoreError

    try:
        change_user(name, action)
    except StoreError as exc:
        fail(str(exc))
    console.print(f"{name} is {done}", highlight=False)


@users_app.command("disable")
def disable(name: Annotated[str, typer.Argument(help="The person's name.")]) -> None:
    """Refuse NAME's token and end their sessions at once (``users add`` gives them a new token)."""
    _change_command(name, "disable", "disabled: their sessions ended and their token is refused.")


@users_app.command("remove")
def remove(name: Annotated[str, typer.Argument(help="The person's name.")]) -> None:
    """Delete NAME and end their sessions (the plays they logged stay, credited to them)."""
    _change_command(name, "remove", "removed: their sessions ended.")


@users_app.command("list")
def list_users() -> None:
    """Everyone who may sign in (names, roles and books, "disabled" after those disabled; never tokens)."""
    from serving.web.store import WebStore

    store = WebStore(settings())
    try:
        for user in store.list_users():
            state = "\tdisabled" if user["disabled"] else ""
            console.print(f"{user['name']}\t{user['role']}\t{user['csm_owner'] or '-'}{state}", highlight=False)
    finally:
        store.close()


def register(app: typer.Typer) -> None:
    app.add_typer(users_app, name="users")


def print_demo_sign_in(home: object, data: object, port: int = 3000, extra_env: str = "") -> str:
    """The demo's last lines: how to start the service with the pages, their URL and a leader's sign-in token."""
    token = add_user("demo-leader", "leader", None)
    console.print(
        "Open the pages (a CSM's book, accounts, the leadership page) in a browser:\n"
        f"  EXPANSION_HOME={home} EXPANSION_DATA_DIR={data} EXPANSION_API_KEY=demo-key-for-this-laptop-only {extra_env}"
        f".venv/bin/expansion serve --port {port}\n"
        f"  URL:   http://127.0.0.1:{port}/ui/signin\n"
        f"  token: {token}   (demo-leader, a leader: every book and the leadership page)",
        highlight=False, soft_wrap=True,
    )
    return token
