"""POST /v1/auth/token (password, API key or refresh token), GET /v1/auth/me, the JWK Set."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

from visitlens.auth.service import TokenGrant
from visitlens.http.api.services import ApiServices
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


async def issue_token(ctx: Ctx[ApiServices]) -> TokenResponse:
    grant = (await ctx.body(TokenRequest)).root
    auth = ctx.services.auth
    logins = ctx.services.logins
    peer = ctx.request.client.host if ctx.request.client else None
    address = logins.client_address(peer, ctx.request.headers.get("x-forwarded-for"))
    await logins.check(address, grant.email if isinstance(grant, PasswordGrant) else None)
    if isinstance(grant, PasswordGrant):
        result = await auth.grant_password(grant.email, grant.password.get_secret_value())
    elif isinstance(grant, ApiKeyGrant):
        result = await auth.grant_api_key(grant.api_key.get_secret_value())
    else:
        assert isinstance(grant, RefreshGrant)
        result = await auth.grant_refresh(grant.refresh_token.get_secret_value())
    return _response(result)


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
