"""Creating the first system administrator: the one account that exists before any tenant."""

from __future__ import annotations

from uuid import UUID

from pydantic import EmailStr, TypeAdapter, ValidationError

from visitlens.adapters.passwords import MIN_PASSWORD_LENGTH, hash_password
from visitlens.adapters.postgres import Database
from visitlens.config import Settings
from visitlens.errors import InvalidInput
from visitlens.stack.endpoints import database_dsns
from visitlens.tenancy.scope import DbScope

_EMAIL: TypeAdapter[str] = TypeAdapter(EmailStr)


async def create_system_admin(settings: Settings, email: str, password: str) -> UUID:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"password needs at least {MIN_PASSWORD_LENGTH} characters")
    try:
        email = str(_EMAIL.validate_python(email))
    except ValidationError as exc:
        raise InvalidInput("not a valid e-mail address", field="email") from exc
    _, app_dsn = database_dsns(settings)
    db = Database(app_dsn, settings.database)
    try:
        async with db.transaction(DbScope(tenant_id=None, system_admin=True)) as conn:
            user_id: UUID = await conn.fetchval(
                "INSERT INTO users (tenant_id, email, role, password_hash, display_name)"
                " VALUES (NULL, $1, 'system_admin', $2, 'System administrator') RETURNING id",
                email.strip().lower(),
                hash_password(password),
            )
            await conn.execute(
                "INSERT INTO audit_log (tenant_id, actor_kind, action, target_type, target_id)"
                " VALUES (NULL, 'system', 'user.create', 'user', $1)",
                str(user_id),
            )
    finally:
        await db.close()
    return user_id
