"""Logging in: bearer tokens (the OAuth2 password flow), and the browser's login page.

`POST /api/auth/token` takes the form fields `username` and `password` (FastAPI's
`OAuth2PasswordRequestForm`) and answers `{"access_token", "token_type": "bearer",
"expires_in"}`. `/login` is the page the viewer and the API docs send a browser to: it sets
an HttpOnly, SameSite=Strict session cookie and a readable CSRF cookie whose value
cookie-authenticated writes echo in `X-CSRF-Token`.
"""

from __future__ import annotations

import html
from typing import Annotated

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel

from api.deps import CallerDep, Services, ServicesDep, audit
from api.identity import CSRF_COOKIE, SESSION_COOKIE, Caller
from infra.auth.tokens import TokenKind

router = APIRouter(tags=["auth"])


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int


class Me(BaseModel):
    name: str
    roles: list[str]
    permissions: list[str]
    via: str


async def _login(
    request: Request, services: Services, username: str, password: str
) -> frozenset[str] | None:
    """The user's roles when the password is right and the user enabled; else None. Either
    way an audit entry (a failure names the user name tried)."""
    roles = await _check_password(services, username, password)
    who = Caller(username, roles or frozenset(), "password", "")
    audit(request, "login", "success" if roles is not None else "failure", "", who)
    return roles


async def _check_password(
    services: Services, username: str, password: str
) -> frozenset[str] | None:
    user = await services.authenticator.password_user(username, password)
    return None if user is None else frozenset(user.roles)


def _issue(
    services: Services, username: str, roles: frozenset[str], kind: TokenKind
) -> tuple[str, int, str]:
    ttl = (
        services.settings.auth.session_ttl_seconds
        if kind == "session"
        else services.settings.auth.token_ttl_seconds
    )
    token, claims = services.authenticator.issuer.issue(username, roles, kind, ttl)
    return token, ttl, claims.csrf


@router.post("/api/auth/token", response_model=TokenResponse)
async def token(
    form: Annotated[OAuth2PasswordRequestForm, Depends()], services: ServicesDep, request: Request
) -> TokenResponse:
    """A bearer token for a local user (OAuth2 password flow)."""
    roles = await _login(request, services, form.username, form.password)
    if roles is None:
        raise HTTPException(
            401, "incorrect username or password", headers={"WWW-Authenticate": "Bearer"}
        )
    access, ttl, _ = _issue(services, form.username, roles, "access")
    return TokenResponse(access_token=access, expires_in=ttl)


@router.get("/api/auth/me", response_model=Me)
async def me(caller: CallerDep) -> Me:
    """Who the credentials on this request belong to, and what they may do."""
    return Me(
        name=caller.name,
        roles=sorted(caller.roles),
        permissions=sorted(p.value for p in caller.permissions),
        via=caller.via,
    )


def safe_next(target: str | None) -> str:
    """Only a path on this server (never another site: `//host` or a scheme)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/viewer"
    return target


LOGIN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>PACS login</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{ font-family: system-ui, sans-serif; background: #0b1a2b; color: #e8eef5;
       display: grid; place-items: center; min-height: 100vh; margin: 0; }}
form {{ background: #13283f; padding: 2rem; border-radius: 8px; width: 18rem; }}
label {{ display: block; margin-top: 1rem; }}
input {{ width: 100%; box-sizing: border-box; padding: .5rem; margin-top: .25rem; }}
button {{ margin-top: 1.5rem; width: 100%; padding: .6rem; }}
.error {{ color: #ff9b9b; }}
</style></head>
<body><form method="post" action="/login">
<h1>PACS</h1>{error}
<label>User name <input name="username" autocomplete="username" required autofocus></label>
<label>Password
<input name="password" type="password" autocomplete="current-password" required></label>
<input type="hidden" name="next" value="{next}">
<button type="submit">Log in</button>
</form></body></html>
"""


def login_page(target: str, error: str = "", status: int = 200) -> HTMLResponse:
    message = f'<p class="error">{html.escape(error)}</p>' if error else ""
    body = LOGIN_PAGE.format(error=message, next=html.escape(safe_next(target), quote=True))
    return HTMLResponse(body, status_code=status, headers={"Cache-Control": "no-store"})


@router.get("/login", include_in_schema=False)
async def show_login(next: str | None = None) -> HTMLResponse:
    return login_page(safe_next(next))


@router.post("/login", include_in_schema=False)
async def submit_login(
    request: Request,
    services: ServicesDep,
    username: Annotated[str, Form()],
    password: Annotated[str, Form()],
    next: Annotated[str, Form()] = "/viewer",
) -> Response:
    roles = await _login(request, services, username, password)
    if roles is None:
        return login_page(next, "Incorrect user name or password.", status=401)
    session, ttl, csrf = _issue(services, username, roles, "session")
    response = RedirectResponse(safe_next(next), status_code=303)
    # Over HTTPS the cookies never travel in clear text again, whatever the setting says.
    secure = services.settings.auth.secure_cookies or request.url.scheme == "https"
    response.set_cookie(
        SESSION_COOKIE, session, max_age=ttl, httponly=True, samesite="strict", secure=secure
    )
    # Readable by the page's scripts, which echo it in X-CSRF-Token on writes.
    response.set_cookie(CSRF_COOKIE, csrf, max_age=ttl, samesite="strict", secure=secure)
    return response


@router.post("/logout", include_in_schema=False)
async def logout(request: Request) -> Response:
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    response.delete_cookie(CSRF_COOKIE)
    return response
