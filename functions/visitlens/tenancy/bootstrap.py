"""Creating the first system administrator: the one account that exists before any tenant."""

from __future__ import annotations

from uuid import UUID

from pydantic import EmailStr, TypeAdapter, ValidationError

from visitlens.errors import InvalidInput
from visitlens.ports import DbScope, PasswordHasher, Transactions
from visitlens.validation import MIN_PASSWORD_LENGTH

_EMAIL: TypeAdapter[str] = TypeAdapter(EmailStr)


async def create_system_admin(
    db: Transactions, hasher: PasswordHasher, email: str, password: str
) -> UUID:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"password needs at least {MIN_PASSWORD_LENGTH} characters")
    try:
        email = str(_EMAIL.validate_python(email))
    except ValidationError as exc:
        raise InvalidInput("not a valid e-mail address", field="email") from exc
    password_hash = await hasher.hash(password)
    async with db.transaction(DbScope(tenant_id=None, system_admin=True)) as conn:
        user_id: UUID = await conn.fetchval(
            "INSERT INTO users (tenant_id, email, role, password_hash, display_name)"
            " VALUES (NULL, $1, 'system_admin', $2, 'System administrator') RETURNING id",
            email.strip().lower(),
            password_hash,
        )
        await conn.execute(
            "INSERT INTO audit_log (tenant_id, actor_kind, action, target_type, target_id)"
            " VALUES (NULL, 'system', 'user.create', 'user', $1)",
            str(user_id),
        )
    return user_id
