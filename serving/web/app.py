"""The pages: a Starlette app of server-rendered Jinja2 templates, mounted on the scoring service at ``/ui``.

Routes (relative to the mount) are listed once at the end of :func:`create_app` (a new page adds one line):
``/signin``, ``/signout``, ``/book`` (``?format=csv`` exports what is shown), ``/search``,
``/renewals``, ``/account/<id>`` with ``/plays`` (log) and ``/plays/<n>`` (update), and for
leaders ``/leadership`` (each line links to ``/leadership/line/<key>``), ``/portfolio`` and
``/unowned`` (with ``/unowned/<id>``, assign an owner). Nothing but the sign-in page and the
stylesheet renders without a session; sessions live in the store (signing out ends one at
once); every POST carries a CSRF token and no body over :data:`MAX_BODY` is read. No script
runs in the browser: filters are plain GET forms, charts are inline SVG written with every
text escaped. Pages are built in a worker thread, so the scoring endpoints sharing the event
loop are not held up.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from serving.web import health, leader_pages, pages
from serving.web.auth import SESSION_COOKIE, SIGNIN_CSRF_COOKIE, Session, new_csrf, same
from serving.web.formats import FILTERS
from serving.web.state import WebState

HERE = Path(__file__).parent
MAX_BODY = 64 * 1024  # every form of the pages fits; the play note is at most 2,000 characters
_HEADERS = {
    # no script at all; styles only from the stylesheet and SVG attributes
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self' data:; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class TooLarge(Exception):
    """A request body over :data:`MAX_BODY`."""


def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters.update(FILTERS)
    env.globals["quote"] = lambda s: quote(str(s), safe="")
    return env


async def read_form(request: Request, limit: int = MAX_BODY) -> dict[str, str]:
    """The url-encoded form of a POST, refusing (:class:`TooLarge`) a body over ``limit`` before reading it all."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise TooLarge
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise TooLarge
    return {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}


def create_app(resolve: Callable[[], WebState]) -> Starlette:
    """The pages, reading the service's state through ``resolve()`` (called on every request)."""
    env = _environment()

    def render(request: Request, template: str, status: int = 200, session: Session | None = None,
               **context: Any) -> HTMLResponse:
        state = resolve()
        html = env.get_template(template).render(base=request.scope.get("root_path", ""), session=session,
                                             currency=state.settings.currency_symbol, **context)
        return HTMLResponse(html, status_code=status, headers=_HEADERS)

    def message(request: Request, status: int, session: Session | None, title: str, text: str) -> HTMLResponse:
        return render(request, "message.html", status, session, title=title, message=text)

    def current(request: Request) -> tuple[WebState, Session | None]:
        state = resolve()
        row = state.store.session(request.cookies.get(SESSION_COOKIE), time.time())
        if row is None:
            return state, None
        return state, Session(row["name"], row["role"], row["csm_owner"], row["expires_at"], row["csrf"])

    def to_signin(request: Request) -> RedirectResponse:
        nxt = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"{request.scope.get('root_path', '')}/signin?{urlencode({'next': nxt})}", 303)

    def signed_in(handler: Callable, leaders_only: bool = False) -> Callable:
        async def wrapped(request: Request) -> Response:
            state, session = await run_in_threadpool(current, request)
            if session is None:
                return to_signin(request)
            if leaders_only and not session.is_leader:
                return message(request, 403, session, "Leaders only",
                               "This page is open to CS leaders. Your book is under My book.")
            if request.method == "POST":
                try:
                    fields = await read_form(request)
                except TooLarge:
                    return message(request, 413, session, "Form too large", f"Forms are limited to {MAX_BODY // 1024} kB.")
                if not same(fields.get("csrf"), session.csrf):
                    return message(request, 403, session, "Form expired",
                                   "This form's security token does not match your session. Reload the page and try again.")
                request.state.form = fields
            return await handler(request, state, session)

        return wrapped

    def signin_form(request: Request, status: int = 200, error: str | None = None, nxt: str = "") -> Response:
        token = new_csrf()
        response = render(request, "signin.html", status, csrf=token, next=nxt, error=error)
        response.set_cookie(SIGNIN_CSRF_COOKIE, token, httponly=True, samesite="strict",
                            secure=request.url.scheme == "https", path=request.scope.get("root_path", "") or "/")
        return response

    async def signin_page(request: Request) -> Response:
        return signin_form(request, nxt=request.query_params.get("next", ""))

    async def signin(request: Request) -> Response:
        state = resolve()
        try:
            fields = await read_form(request)
        except TooLarge:
            return message(request, 413, None, "Form too large", f"Forms are limited to {MAX_BODY // 1024} kB.")
        base = request.scope.get("root_path", "")
        if not same(fields.get("csrf"), request.cookies.get(SIGNIN_CSRF_COOKIE)):
            return message(request, 403, None, "Form expired", "The sign-in form expired. Open the sign-in page again.")
        user = await run_in_threadpool(state.store.user_by_token, fields.get("token", ""))
        if user is None:
            return signin_form(request, 401, "That sign-in token is not known (or was disabled). Ask your admin for a "
                                             "new one (expansion users add).", fields.get("next", ""))
        hours = state.settings.session_hours
        sid, _ = await run_in_threadpool(state.store.open_session, user["name"], time.time() + hours * 3600)
        nxt = fields.get("next", "")
        target = nxt if nxt.startswith(f"{base}/") and not nxt.startswith("//") else f"{base}/book"
        response = RedirectResponse(target, 303)
        response.set_cookie(SESSION_COOKIE, sid, httponly=True, samesite="lax", secure=request.url.scheme == "https",
                            max_age=int(hours * 3600), path=base or "/")
        response.delete_cookie(SIGNIN_CSRF_COOKIE, path=base or "/")
        return response

    async def signout(request: Request, state: WebState, session: Session) -> Response:
        await run_in_threadpool(state.store.end_session, request.cookies.get(SESSION_COOKIE, ""))
        base = request.scope.get("root_path", "")
        response = RedirectResponse(f"{base}/signin", 303)
        response.delete_cookie(SESSION_COOKIE, path=base or "/")
        return response

    async def home(request: Request) -> Response:
        return RedirectResponse(f"{request.scope.get('root_path', '')}/book", 303)

    async def book(request: Request, state: WebState, session: Session) -> Response:
        view = await run_in_threadpool(pages.book_view, state, session, request.query_params)
        if request.query_params.get("format") == "csv":
            return PlainTextResponse(view["csv"], media_type="text/csv", headers={
                **_HEADERS, "Content-Disposition": f'attachment; filename="book-{view["as_of"] or "none"}.csv"'})
        return render(request, "book.html", session=session, **view)

    async def search(request: Request, state: WebState, session: Session) -> Response:
        view = await run_in_threadpool(pages.search_view, state, request.query_params.get("q", ""))
        return render(request, "search.html", session=session, **view)

    async def renewals(request: Request, state: WebState, session: Session) -> Response:
        view = await run_in_threadpool(pages.renewals_view, state, session, request.query_params)
        return render(request, "renewals.html", session=session, **view)

    def not_found(request: Request, session: Session, account_id: str) -> Response:
        return message(request, 404, session, "Account not found", f"No account {account_id!r} in the served snapshot.")

    async def account_page(request: Request, state: WebState, session: Session, status: int = 200,
                           error: str | None = None) -> Response:
        account_id = request.path_params["account_id"]
        view = await run_in_threadpool(pages.account_view, state, account_id)
        if view is None:
            return not_found(request, session, account_id)
        return render(request, "account.html", status, session=session, csrf=session.csrf,
                      saved=request.query_params.get("saved"), error=error, **view)

    async def account(request: Request, state: WebState, session: Session) -> Response:
        return await account_page(request, state, session)

    async def after_write(request: Request, state: WebState, session: Session, write: Callable, saved: str) -> Response:
        account_id = request.path_params["account_id"]
        if account_id not in state.snapshot().scores.index:
            return not_found(request, session, account_id)
        error = await run_in_threadpool(write)
        if error:
            return await account_page(request, state, session, 400, error)
        base = request.scope.get("root_path", "")
        return RedirectResponse(f"{base}/account/{quote(account_id, safe='')}?saved={saved}#plays", 303)

    async def log_play(request: Request, state: WebState, session: Session) -> Response:
        def write() -> str | None:
            view = pages.account_view(state, request.path_params["account_id"])
            return pages.log_play(state, session, view, request.state.form, dt.datetime.now(dt.UTC))

        return await after_write(request, state, session, write, "logged")

    async def update_play(request: Request, state: WebState, session: Session) -> Response:
        def write() -> str | None:
            return pages.update_play(state, session, request.path_params["account_id"], request.path_params["play_id"],
                                     request.state.form, dt.datetime.now(dt.UTC))

        return await after_write(request, state, session, write, "updated")

    async def leadership(request: Request, state: WebState, session: Session) -> Response:
        return render(request, "leadership.html", session=session,
                      **await run_in_threadpool(leader_pages.leadership_view, state))

    async def line(request: Request, state: WebState, session: Session) -> Response:
        view = await run_in_threadpool(leader_pages.line_accounts_view, state, request.path_params["key"])
        if view is None:
            return message(request, 404, session, "No such line", "That leadership line does not exist.")
        return render(request, "line.html", session=session, **view)

    async def portfolio(request: Request, state: WebState, session: Session) -> Response:
        return render(request, "portfolio.html", session=session,
                      **await run_in_threadpool(leader_pages.portfolio_view, state))

    async def unowned(request: Request, state: WebState, session: Session) -> Response:
        view = await run_in_threadpool(leader_pages.unowned_view, state, request.query_params)
        return render(request, "unowned.html", session=session, csrf=session.csrf,
                      saved=request.query_params.get("saved"), error=None, **view)

    async def assign(request: Request, state: WebState, session: Session) -> Response:
        error = await run_in_threadpool(leader_pages.assign_owner, state, session, request.path_params["account_id"],
                                        request.state.form, dt.datetime.now(dt.UTC))
        if error:
            return message(request, 400, session, "Owner not assigned", error)
        back = request.state.form.get("back", "")
        base = request.scope.get("root_path", "")
        target = back if back.startswith(f"{base}/unowned") and not back.startswith("//") else f"{base}/unowned"
        return RedirectResponse(target, 303)

    async def model_health(request: Request, state: WebState, session: Session) -> Response:  # serving/web/health.py
        return render(request, "health.html", session=session, **await run_in_threadpool(health.health_view, state))

    signed, leaders = signed_in, (lambda handler: signed_in(handler, leaders_only=True))
    routes: list[BaseRoute] = [  # a new page is one line here
        Route("/model-health", leaders(model_health)),
        Route("/", home), Route("/signin", signin_page, methods=["GET"]), Route("/signin", signin, methods=["POST"]),
        Route("/signout", signed(signout), methods=["POST"]), Route("/book", signed(book)),
        Route("/search", signed(search)), Route("/renewals", signed(renewals)),
        Route("/leadership", leaders(leadership)), Route("/leadership/line/{key}", leaders(line)),
        Route("/portfolio", leaders(portfolio)), Route("/unowned", leaders(unowned)),
        Route("/unowned/{account_id:path}", leaders(assign), methods=["POST"]),
        Route("/account/{account_id:path}/plays/{play_id:int}", signed(update_play), methods=["POST"]),
        Route("/account/{account_id:path}/plays", signed(log_play), methods=["POST"]),
        Route("/account/{account_id:path}", signed(account)),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    return Starlette(routes=routes)
