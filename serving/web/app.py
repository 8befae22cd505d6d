"""The pages: a Starlette app of server-rendered Jinja2 templates, mounted on the scoring service at ``/ui``.

Routes (relative to the mount): ``/signin``, ``/signout``, ``/book`` (``?format=csv`` exports
what is shown), ``/account/<id>``, ``/account/<id>/plays`` (log a play), ``/leadership``.
Nothing but the sign-in page and the stylesheet renders without a session; every POST
carries a CSRF token (the session's, or the sign-in page's double-submit cookie). No
script runs in the browser: filters are plain GET forms, charts are inline SVG. Pages are built
in a worker thread, so the scoring endpoints sharing the event loop are not held up.
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
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from serving.web import health, pages
from serving.web.auth import (SESSION_COOKIE, SIGNIN_CSRF_COOKIE, Session, decode_session, encode_session,
                              new_csrf, same, token_id)
from serving.web.state import WebState

HERE = Path(__file__).parent
_HEADERS = {
    # no script at all; matplotlib's inline SVG carries a <style> element
    "Content-Security-Policy": "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _pct(value: Any, digits: int = 0) -> str:
    return "–" if value is None or value != value else f"{float(value):.{digits}f} %"


def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["money"] = pages.money
    env.filters["pct"] = _pct
    env.filters["signed"] = lambda v, d=0: "–" if v is None or v != v else f"{float(v):+.{d}f}"
    env.globals["quote"] = lambda s: quote(str(s), safe="")
    return env


def create_app(resolve: Callable[[], WebState]) -> Starlette:
    """The pages, reading the service's state through ``resolve()`` (called on every request)."""
    env = _environment()

    def render(request: Request, name: str, status: int = 200, session: Session | None = None, **context: Any) -> HTMLResponse:
        state = resolve()
        html = env.get_template(name).render(base=request.scope.get("root_path", ""), session=session,
                                             currency=state.settings.currency_symbol, **context)
        return HTMLResponse(html, status_code=status, headers=_HEADERS)

    def current(request: Request) -> tuple[WebState, Session | None]:
        state = resolve()
        session = decode_session(request.cookies.get(SESSION_COOKIE), state.secret, time.time())
        if session is not None and not state.store.token_current(session.name, session.token_id):
            return state, None  # the person was given a new token (or removed): older sessions end
        return state, session

    def to_signin(request: Request) -> RedirectResponse:
        nxt = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"{request.scope.get('root_path', '')}/signin?{urlencode({'next': nxt})}", 303)

    async def form(request: Request) -> dict[str, str]:
        body = (await request.body()).decode("utf-8", "replace")
        return {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}

    def signed_in(handler: Callable) -> Callable:
        async def wrapped(request: Request) -> Response:
            state, session = current(request)
            if session is None:
                return to_signin(request)
            if request.method == "POST":
                fields = await form(request)
                if not same(fields.get("csrf"), session.csrf):
                    return render(request, "message.html", 403, session, title="Form expired",
                                  message="This form's security token does not match your session. Reload the page and try again.")
                request.state.form = fields
            return await handler(request, state, session)

        return wrapped

    async def signin_page(request: Request) -> Response:
        state, session = current(request)
        token = new_csrf()
        response = render(request, "signin.html", csrf=token, next=request.query_params.get("next", ""), error=None)
        response.set_cookie(SIGNIN_CSRF_COOKIE, token, httponly=True, samesite="strict",
                            secure=request.url.scheme == "https", path=request.scope.get("root_path", "") or "/")
        return response

    async def signin(request: Request) -> Response:
        state = resolve()
        fields = await form(request)
        base = request.scope.get("root_path", "")
        if not same(fields.get("csrf"), request.cookies.get(SIGNIN_CSRF_COOKIE)):
            return render(request, "message.html", 403, title="Form expired",
                          message="The sign-in form expired. Open the sign-in page again.")
        user = await run_in_threadpool(state.store.user_by_token, fields.get("token", ""))
        if user is None:
            token = new_csrf()
            response = render(request, "signin.html", 401, csrf=token, next=fields.get("next", ""),
                              error="That sign-in token is not known. Ask your admin for a new one (expansion users add).")
            response.set_cookie(SIGNIN_CSRF_COOKIE, token, httponly=True, samesite="strict",
                                secure=request.url.scheme == "https", path=base or "/")
            return response
        session = Session(user["name"], user["role"], user["csm_owner"],
                          time.time() + state.settings.session_hours * 3600, new_csrf(), token_id(user["token_sha256"]))
        nxt = fields.get("next", "")
        target = nxt if nxt.startswith(f"{base}/") and not nxt.startswith("//") else f"{base}/book"
        response = RedirectResponse(target, 303)
        response.set_cookie(SESSION_COOKIE, encode_session(session, state.secret), httponly=True, samesite="lax",
                            secure=request.url.scheme == "https", max_age=int(state.settings.session_hours * 3600),
                            path=base or "/")
        response.delete_cookie(SIGNIN_CSRF_COOKIE, path=base or "/")
        return response

    @signed_in
    async def signout(request: Request, state: WebState, session: Session) -> Response:
        base = request.scope.get("root_path", "")
        response = RedirectResponse(f"{base}/signin", 303)
        response.delete_cookie(SESSION_COOKIE, path=base or "/")
        return response

    async def home(request: Request) -> Response:
        return RedirectResponse(f"{request.scope.get('root_path', '')}/book", 303)

    @signed_in
    async def book(request: Request, state: WebState, session: Session) -> Response:
        view = await run_in_threadpool(pages.book_view, state, session, request.query_params)
        if request.query_params.get("format") == "csv":
            return PlainTextResponse(view["csv"], media_type="text/csv", headers={
                **_HEADERS, "Content-Disposition": f'attachment; filename="book-{view["as_of"] or "none"}.csv"'})
        return render(request, "book.html", session=session, **view)

    @signed_in
    async def account(request: Request, state: WebState, session: Session) -> Response:
        view = await run_in_threadpool(pages.account_view, state, request.path_params["account_id"])
        if view is None:
            return render(request, "message.html", 404, session, title="Account not found",
                          message=f"No account {request.path_params['account_id']!r} in the served snapshot.")
        return render(request, "account.html", session=session, csrf=session.csrf,
                      saved=request.query_params.get("saved") == "1", error=None, **view)

    @signed_in
    async def log_play(request: Request, state: WebState, session: Session) -> Response:
        account_id = request.path_params["account_id"]
        view = await run_in_threadpool(pages.account_view, state, account_id)
        if view is None:
            return render(request, "message.html", 404, session, title="Account not found",
                          message=f"No account {account_id!r} in the served snapshot.")
        fields = request.state.form
        error = await run_in_threadpool(pages.log_play, state, session, view, fields, dt.datetime.now(dt.UTC))
        if error:
            return render(request, "account.html", 400, session=session, csrf=session.csrf, saved=False, error=error,
                          **view)
        base = request.scope.get("root_path", "")
        return RedirectResponse(f"{base}/account/{quote(account_id, safe='')}?saved=1#plays", 303)

    @signed_in
    async def leadership(request: Request, state: WebState, session: Session) -> Response:
        if not session.is_leader:
            return render(request, "message.html", 403, session, title="Leaders only",
                          message="The leadership page is open to CS leaders. Your book is under My book.")
        return render(request, "leadership.html", session=session, **await run_in_threadpool(pages.leadership_view, state))

    @signed_in
    async def model_health(request: Request, state: WebState, session: Session) -> Response:  # serving/web/health.py
        if not session.is_leader:
            return render(request, "message.html", 403, session, title="Leaders only", message="Model health is open to leaders.")
        return render(request, "health.html", session=session, **await run_in_threadpool(health.health_view, state))

    routes = [
        Route("/model-health", model_health),
        Route("/", home), Route("/signin", signin_page, methods=["GET"]), Route("/signin", signin, methods=["POST"]),
        Route("/signout", signout, methods=["POST"]), Route("/book", book), Route("/leadership", leadership),
        Route("/account/{account_id:path}/plays", log_play, methods=["POST"]),
        Route("/account/{account_id:path}", account),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    return Starlette(routes=routes)
