"""POST /v1/auth/token (password, API key or refresh token), GET /v1/auth/me, the JWK Set."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse, Response

from visitlens.auth.service import TokenGrant
from visitlens.config import Environment
from visitlens.errors import InvalidInput, Unauthenticated
from visitlens.http.api.services import ApiServices
from visitlens.http.headers import over_tls
from visitlens.http.problems import problem_response
from visitlens.http.router import Ctx
from visitlens.schemas import (
    ApiKeyGrant,
    Me,
    PasswordGrant,
    RefreshGrant,
    TokenRequest,
    TokenResponse,
)


def _response(grant: TokenGrant) -> TokenResponse:
    return TokenResponse(
        access_token=grant.access_token,
        expires_in=grant.expires_in,
        refresh_token=grant.refresh_token,
        role=grant.principal.role,
        tenant_id=grant.principal.tenant_id,
    )


REFRESH_COOKIE = "visitlens_refresh"
SIGNED_IN_COOKIE = "visitlens_signed_in"
REFRESH_COOKIE_PATH = "/v1/auth/token"
"""The cookie goes only to the token endpoint (grants and sign-out): never with any other
request, so no other route can be made to act on it."""


async def issue_token(ctx: Ctx[ApiServices]) -> TokenResponse | Response:
    grant = (await ctx.body(TokenRequest)).root
    auth = ctx.services.auth
    logins = ctx.services.logins
    peer = ctx.request.client.host if ctx.request.client else None
    address = logins.client_address(peer, ctx.request.headers.get("x-forwarded-for"))
    await logins.check(address, grant.email if isinstance(grant, PasswordGrant) else None)
    if isinstance(grant, PasswordGrant):
        result = await auth.grant_password(grant.email, grant.password.get_secret_value())
    elif isinstance(grant, ApiKeyGrant):
        return _response(await auth.grant_api_key(grant.api_key.get_secret_value()))
    else:
        assert isinstance(grant, RefreshGrant)
        presented = (
            grant.refresh_token.get_secret_value()
            if grant.refresh_token is not None
            else ctx.request.cookies.get(REFRESH_COOKIE)
        )
        if not presented:
            raise InvalidInput(
                "give a refresh_token, or send the refresh cookie", field="body.refresh_token"
            )
        try:
            result = await auth.grant_refresh(presented)
        except Unauthenticated as error:
            if grant.refresh_token is not None:
                raise
            return _cleared(ctx, problem_response(error))  # a spent cookie is not tried again
    if not grant.refresh_cookie:
        return _response(result)
    body = _response(result).model_copy(update={"refresh_token": None})
    response = JSONResponse(body.model_dump(mode="json"))
    assert result.refresh_token is not None
    ttl = ctx.services.settings.auth.refresh_ttl_s
    secure = _secure(ctx)
    response.set_cookie(
        REFRESH_COOKIE, result.refresh_token, max_age=ttl,
        path=REFRESH_COOKIE_PATH, secure=secure, httponly=True, samesite="strict",
    )  # fmt: skip
    # no secret: it only tells the console that a session may be restored from the cookie
    response.set_cookie(SIGNED_IN_COOKIE, "1", max_age=ttl, path="/", secure=secure,
                        samesite="strict")  # fmt: skip
    return response


def _secure(ctx: Ctx[ApiServices]) -> bool:
    """The cookies are ``Secure`` in production and wherever the request came over TLS. Only a
    development or test server on plain HTTP (the local gateway on 127.0.0.1) leaves it off:
    Chromium stores no ``Secure`` cookie from an ``http://`` loopback page."""
    return ctx.services.settings.env is Environment.PROD or over_tls(ctx.request)


async def sign_out(ctx: Ctx[ApiServices]) -> Response:
    """The refresh cookie's session ends: its family revoked, the cookies cleared (204 either
    way). An access token already issued lives out its minutes (stateless, ADR 0003)."""
    presented = ctx.request.cookies.get(REFRESH_COOKIE)
    if presented:
        await ctx.services.auth.revoke_refresh(presented)
    return _cleared(ctx, Response(status_code=204))


def _cleared(ctx: Ctx[ApiServices], response: Response) -> Response:
    secure = _secure(ctx)
    response.delete_cookie(
        REFRESH_COOKIE, path=REFRESH_COOKIE_PATH, secure=secure, httponly=True, samesite="strict"
    )
    response.delete_cookie(SIGNED_IN_COOKIE, path="/", secure=secure, samesite="strict")
    return response


async def me(ctx: Ctx[ApiServices]) -> Me:
    p = ctx.principal
    return Me(
        subject=p.subject,
        kind=p.kind.value,
        role=p.role,
        tenant_id=p.tenant_id,
        site_ids=sorted(p.site_ids),
        camera_ids=sorted(p.camera_ids),
    )


async def jwks(ctx: Ctx[ApiServices]) -> JSONResponse:
    body: dict[str, Any] = ctx.services.keys.jwks()
    return JSONResponse(body, headers={"Cache-Control": "public, max-age=300"})
