"""The HTTP surface of the `api` function: every route, its roles and its models, in one table."""

from __future__ import annotations

from starlette.responses import JSONResponse

from visitlens import __version__
from visitlens.auth.principal import Role
from visitlens.http.api import api_keys, cameras, sites, snapshots, tenants, users
from visitlens.http.api.services import ApiServices
from visitlens.http.router import Ctx, Route
from visitlens.http.routes import audit as audit_routes
from visitlens.http.routes import auth as auth_routes
from visitlens.pagination import Page, PageQuery
from visitlens.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyOut,
    CameraCreate,
    CameraOut,
    CameraUpdate,
    Health,
    Me,
    SiteCreate,
    SiteOut,
    SiteUpdate,
    TenantCreate,
    TenantOut,
    TenantUpdate,
    TokenRequest,
    TokenResponse,
    UserCreate,
    UserOut,
    UserUpdate,
)

SYS = Role.SYSTEM_ADMIN
ADMIN = Role.TENANT_ADMIN
MANAGER = Role.SITE_MANAGER
WORKER = Role.WORKER

T = "/v1/tenants/{tenant_id:uuid}"


async def health(ctx: Ctx[ApiServices]) -> Health:
    return Health(status="ok", version=__version__)


async def openapi_json(ctx: Ctx[ApiServices]) -> JSONResponse:
    from visitlens.http.surface import openapi_document

    return JSONResponse(openapi_document())


ROUTES: list[Route] = [
    Route.build(
        "GET", "/healthz", health, summary="Liveness", tag="meta", public=True, response=Health
    ),
    Route.build(
        "GET", "/v1/openapi.json", openapi_json, summary="This document", tag="meta", public=True
    ),
    Route.build(
        "POST",
        "/v1/auth/token",
        auth_routes.issue_token,
        tag="auth",
        public=True,
        summary="Exchange a password, API key or refresh token for tokens",
        body=TokenRequest,
        response=TokenResponse,
    ),
    Route.build(
        "DELETE",
        "/v1/auth/token",
        auth_routes.sign_out,
        tag="auth",
        public=True,  # the refresh cookie is the credential
        summary="Sign out: end the refresh cookie's session and clear the cookie",
        status=204,
    ),
    Route.build(
        "GET", "/v1/auth/me", auth_routes.me, tag="auth", summary="The caller", response=Me
    ),
    Route.build(
        "GET",
        "/.well-known/jwks.json",
        auth_routes.jwks,
        tag="auth",
        public=True,
        summary="Public signing keys (JWK Set)",
    ),
    # tenants
    Route.build(
        "GET",
        "/v1/tenants",
        tenants.list_tenants,
        tag="tenants",
        roles=(SYS,),
        summary="List tenants",
        query=PageQuery,
        response=Page[TenantOut],
    ),
    Route.build(
        "POST",
        "/v1/tenants",
        tenants.create_tenant,
        tag="tenants",
        roles=(SYS,),
        summary="Create a tenant",
        body=TenantCreate,
        response=TenantOut,
        status=201,
    ),
    Route.build(
        "GET",
        T,
        tenants.get_tenant,
        tag="tenants",
        roles=(ADMIN,),
        summary="Get a tenant",
        response=TenantOut,
    ),
    Route.build(
        "PATCH",
        T,
        tenants.update_tenant,
        tag="tenants",
        roles=(ADMIN,),
        summary="Update a tenant",
        body=TenantUpdate,
        response=TenantOut,
    ),
    Route.build(
        "DELETE",
        T,
        tenants.delete_tenant,
        tag="tenants",
        roles=(SYS,),
        summary="Delete a tenant and everything it owns",
        status=204,
    ),
    # sites
    Route.build(
        "GET",
        f"{T}/sites",
        sites.list_sites,
        tag="sites",
        roles=(ADMIN, MANAGER, WORKER),
        summary="List sites in scope",
        query=PageQuery,
        response=Page[SiteOut],
    ),
    Route.build(
        "POST",
        f"{T}/sites",
        sites.create_site,
        tag="sites",
        roles=(ADMIN,),
        summary="Create a site",
        body=SiteCreate,
        response=SiteOut,
        status=201,
    ),
    Route.build(
        "GET",
        f"{T}/sites/{{site_id:uuid}}",
        sites.get_site,
        tag="sites",
        roles=(ADMIN, MANAGER, WORKER),
        summary="Get a site",
        response=SiteOut,
    ),
    Route.build(
        "PATCH",
        f"{T}/sites/{{site_id:uuid}}",
        sites.update_site,
        tag="sites",
        roles=(ADMIN, MANAGER),
        summary="Update a site",
        body=SiteUpdate,
        response=SiteOut,
    ),
    Route.build(
        "DELETE",
        f"{T}/sites/{{site_id:uuid}}",
        sites.delete_site,
        tag="sites",
        roles=(ADMIN,),
        summary="Delete a site with its cameras and visits",
        status=204,
    ),
    Route.build(
        "POST",
        f"{T}/sites/{{site_id:uuid}}/cameras/{{camera_id:uuid}}/snapshots",
        snapshots.presign_snapshot,
        tag="cameras",
        roles=(ADMIN, MANAGER, WORKER),
        summary="A presigned upload URL for one track's snapshot (edge workers)",
        body=snapshots.SnapshotRequest,
        response=snapshots.SnapshotUpload,
        status=201,
    ),
    # cameras
    Route.build(
        "GET",
        f"{T}/sites/{{site_id:uuid}}/cameras",
        cameras.list_cameras,
        tag="cameras",
        roles=(ADMIN, MANAGER, WORKER),
        summary="List a site's cameras",
        query=PageQuery,
        response=Page[CameraOut],
    ),
    Route.build(
        "POST",
        f"{T}/sites/{{site_id:uuid}}/cameras",
        cameras.create_camera,
        tag="cameras",
        roles=(ADMIN, MANAGER),
        summary="Add a camera to a site",
        body=CameraCreate,
        response=CameraOut,
        status=201,
    ),
    Route.build(
        "GET",
        f"{T}/cameras/{{camera_id:uuid}}",
        cameras.get_camera,
        tag="cameras",
        roles=(ADMIN, MANAGER, WORKER),
        summary="Get a camera",
        response=CameraOut,
    ),
    Route.build(
        "PATCH",
        f"{T}/cameras/{{camera_id:uuid}}",
        cameras.update_camera,
        tag="cameras",
        roles=(ADMIN, MANAGER),
        summary="Update a camera",
        body=CameraUpdate,
        response=CameraOut,
    ),
    Route.build(
        "DELETE",
        f"{T}/cameras/{{camera_id:uuid}}",
        cameras.delete_camera,
        tag="cameras",
        roles=(ADMIN, MANAGER),
        summary="Delete a camera",
        status=204,
    ),
    # users
    Route.build(
        "GET",
        f"{T}/users",
        users.list_users,
        tag="users",
        roles=(ADMIN,),
        summary="List users",
        query=PageQuery,
        response=Page[UserOut],
    ),
    Route.build(
        "POST",
        f"{T}/users",
        users.create_user,
        tag="users",
        roles=(ADMIN,),
        summary="Create a user",
        body=UserCreate,
        response=UserOut,
        status=201,
    ),
    Route.build(
        "GET",
        f"{T}/users/{{user_id:uuid}}",
        users.get_user,
        tag="users",
        roles=(ADMIN,),
        summary="Get a user",
        response=UserOut,
    ),
    Route.build(
        "PATCH",
        f"{T}/users/{{user_id:uuid}}",
        users.update_user,
        tag="users",
        roles=(ADMIN,),
        summary="Update a user",
        body=UserUpdate,
        response=UserOut,
    ),
    Route.build(
        "DELETE",
        f"{T}/users/{{user_id:uuid}}",
        users.delete_user,
        tag="users",
        roles=(ADMIN,),
        summary="Delete a user",
        status=204,
    ),
    # API keys
    Route.build(
        "GET",
        f"{T}/api-keys",
        api_keys.list_api_keys,
        tag="api-keys",
        roles=(ADMIN, MANAGER),
        summary="List API keys",
        query=PageQuery,
        response=Page[ApiKeyOut],
    ),
    Route.build(
        "POST",
        f"{T}/api-keys",
        api_keys.create_api_key,
        tag="api-keys",
        roles=(ADMIN, MANAGER),
        summary="Create an API key (the secret is shown once)",
        body=ApiKeyCreate,
        response=ApiKeyCreated,
        status=201,
    ),
    Route.build(
        "GET",
        f"{T}/api-keys/{{key_id:uuid}}",
        api_keys.get_api_key,
        tag="api-keys",
        roles=(ADMIN, MANAGER),
        summary="Get an API key",
        response=ApiKeyOut,
    ),
    Route.build(
        "DELETE",
        f"{T}/api-keys/{{key_id:uuid}}",
        api_keys.revoke_api_key,
        tag="api-keys",
        roles=(ADMIN, MANAGER),
        summary="Revoke an API key",
        status=204,
    ),
    # the audit log and the console's thumbnails
    Route.build(
        "GET",
        f"{T}/audit",
        audit_routes.list_entries,
        tag="audit",
        roles=(ADMIN,),
        summary="Audit entries, newest first, filtered by action (or prefix), actor, target, time",
        query=audit_routes.AuditQuery,
        response=audit_routes.AuditPage,
    ),
    Route.build(
        "GET",
        f"{T}/audit/verification",
        audit_routes.verify,
        tag="audit",
        roles=(ADMIN,),
        summary="Verify the tenant's audit hash chain (edited, missing or reordered rows)",
        response=audit_routes.AuditVerification,
    ),
    Route.build(
        "GET",
        f"{T}/visits/{{visit_id:uuid}}/snapshot",
        snapshots.visit_snapshot,
        tag="reports",
        roles=(ADMIN, MANAGER),
        summary="The best retained snapshot of a visit (image/jpeg; 404 once purged; audited)",
    ),
]


def _report_routes() -> list[Route]:
    from visitlens.http.routes.reports import routes

    return routes()


ROUTES.extend(_report_routes())
