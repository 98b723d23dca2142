"""Who may reach the annotation app: its own host names only, with a secret of this start.

The printed link carries the secret once; `RequireSecret` moves it into an HttpOnly,
SameSite=Strict cookie named after the port and drops it from the address bar, and from
then on every route (pages, API and static files) refuses a request without it. Every
answer carries the headers a local app should send (`SecurityHeaders`). The host check is
Starlette's `TrustedHostMiddleware`, set up in `app.create_app`.
"""

from __future__ import annotations

import html
import secrets
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.responses import HTMLResponse, JSONResponse, Response

# Cookies are shared by every port of a host, so each app's cookie is named after its port:
# two apps on one machine (say, two rounds) do not sign each other's tabs out.
TOKEN_COOKIE = "issueminer_{port}"
TOKEN_PARAM = "t"  # the printed link's query parameter
# names a browser on this machine may use for the app, whatever address it is bound to
LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)


SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]


class SecurityHeaders:
    """ASGI middleware adding the headers above to every response."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)


SIGNED_IN = "issueminer.annotator"  # where RequireSecret leaves who signed in, in the scope
SIGN_IN_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="0; url={url}"><title>issueminer</title></head>
<body><p>Signed in. <a href="{url}">Continue</a>.</p></body></html>"""
NO_SECRET = (
    "This address needs the link that `issueminer label` printed when it started "
    "(it carries a secret made at every start)."
)


class RequireSecret:
    """ASGI middleware: only requests carrying a secret of this start get through.

    A link's `?t=SECRET` signs the browser in: the answer sets the cookie and sends the
    browser on to the same address without the secret (a meta refresh rather than a
    redirect, so the SameSite=Strict cookie goes with it even when the link was opened
    from another site). Afterwards the cookie alone is enough. Anything else gets 403.
    """

    def __init__(self, app: Any, people: dict[str, tuple[str, str]]) -> None:
        self.app = app
        self.people = people

    def _named(self, token: str | None) -> tuple[str, str] | None:
        # compare in constant time with every secret, so timing does not tell a near miss
        found = None
        for secret, person in self.people.items():
            if token is not None and secrets.compare_digest(token.encode(), secret.encode()):
                found = person
        return found

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cookie_name = TOKEN_COOKIE.format(port=(scope.get("server") or ("", 0))[1])
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), True)
        from_link = next((value for key, value in query if key == TOKEN_PARAM), None)
        if from_link is not None:
            name = self._named(from_link)
            if name is None or scope["method"] != "GET":
                await _refuse(scope, receive, send)
                return
            rest = urlencode([(k, v) for k, v in query if k != TOKEN_PARAM])
            await _signed_in(cookie_name, from_link, scope["path"] + (f"?{rest}" if rest else ""))(
                scope, receive, send
            )
            return
        name = self._named(_cookie(scope, cookie_name))
        if name is None:
            await _refuse(scope, receive, send)
            return
        scope[SIGNED_IN] = name
        await self.app(scope, receive, send)


def _cookie(scope: Any, name: str) -> str | None:
    for key, value in scope.get("headers", []):
        if key == b"cookie":
            jar = SimpleCookie()
            jar.load(value.decode("latin-1"))
            if name in jar:
                return jar[name].value
    return None


def _signed_in(cookie_name: str, token: str, url: str) -> Response:
    response = HTMLResponse(SIGN_IN_PAGE.format(url=html.escape(url, quote=True)))
    response.set_cookie(cookie_name, token, httponly=True, samesite="strict", path="/")
    return response


def forbidden(path: str, message: str) -> Response:
    """403 as the asker reads it: JSON for the API, a line of HTML for a page."""
    if path.startswith("/api/"):
        return JSONResponse({"ok": False, "error": message}, status_code=403)
    return HTMLResponse(f"<!doctype html><p>{html.escape(message)}</p>", 403)


async def _refuse(scope: Any, receive: Any, send: Any) -> None:
    await forbidden(scope["path"], NO_SECRET)(scope, receive, send)
