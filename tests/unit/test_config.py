"""Settings: validated at start, aliases honoured, placeholder secrets refused in prod."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from visitlens.config import Environment, Settings, load_settings


def test_defaults_are_dev_and_embedded() -> None:
    settings = Settings()
    assert settings.env is Environment.DEV
    assert settings.database.url is None and settings.milvus.uri is None
    assert settings.s3.raw_bucket == "faces-raw" and settings.s3.raw_retention_days == 30


def test_prod_refuses_placeholder_secrets(tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(env=Environment.PROD, auth={"keys_dir": tmp_path})  # type: ignore[arg-type]
    text = str(caught.value)
    assert "database.app_password" in text and "s3.secret_key" in text


def test_prod_needs_real_keys_and_database(tmp_path: Path) -> None:
    secrets = {
        "database": {"url": "postgresql://o:p@db/visitlens", "app_password": "a-real-one"},
        "s3": {"access_key": "real-access", "secret_key": "real-secret"},
    }
    with pytest.raises(ValidationError, match="keys_dir"):
        Settings(env=Environment.PROD, **secrets)  # type: ignore[arg-type]
    ok = Settings(env=Environment.PROD, auth={"keys_dir": tmp_path}, **secrets)  # type: ignore[arg-type]
    assert ok.keys_dir == tmp_path


def test_well_known_aliases_and_nested_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://owner@db:5432/visitlens")
    monkeypatch.setenv("MILVUS_URI", "http://milvus:19530")
    monkeypatch.setenv("S3_ENDPOINT", "minio:9000")
    monkeypatch.setenv("VISITLENS_S3__RAW_RETENTION_DAYS", "14")
    settings = load_settings()
    assert settings.database.url is not None
    assert settings.database.url.get_secret_value().endswith("/visitlens")
    assert settings.milvus.uri == "http://milvus:19530"
    assert settings.s3.endpoint == "minio:9000" and settings.s3.raw_retention_days == 14


def test_secrets_from_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "visitlens_database").write_text('{"app_password": "from-a-file"}')
    monkeypatch.setenv("VISITLENS_SECRETS_DIR", str(tmp_path))
    settings = load_settings()
    assert settings.database.app_password.get_secret_value() == "from-a-file"


def test_one_setting_per_file_as_an_operator_writes_its_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The migrate Job mounts CloudNativePG's ``uri`` key as ``visitlens_database__url``: secrets
    as files, never environment variables; a group's JSON file still works beside it."""
    (tmp_path / "visitlens_database__url").write_text("postgresql://owner:pw@pg/visitlens\n")
    (tmp_path / "visitlens_database").write_text('{"app_password": "from-a-group-file"}')
    monkeypatch.setenv("VISITLENS_SECRETS_DIR", str(tmp_path))
    settings = load_settings()
    assert settings.database.url is not None
    assert settings.database.url.get_secret_value() == "postgresql://owner:pw@pg/visitlens"
    assert settings.database.app_password.get_secret_value() == "from-a-group-file"


def test_a_missing_secrets_directory_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VISITLENS_SECRETS_DIR", "/nonexistent/visitlens-secrets")
    with pytest.raises(Exception, match="visitlens-secrets"):
        load_settings()


def test_out_of_range_values_name_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VISITLENS_S3__RAW_RETENTION_DAYS", "0")
    with pytest.raises(ValidationError, match="raw_retention_days"):
        load_settings()


def test_secrets_are_not_printed() -> None:
    settings = Settings(database={"app_password": "hunter2-hunter2"})  # type: ignore[arg-type]
    assert "hunter2" not in repr(settings) and "hunter2" not in str(settings.model_dump())


def test_alias_merges_with_nested_env_and_never_writes_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import os

    monkeypatch.setenv("DATABASE_URL", "postgresql://owner@db/visitlens")
    monkeypatch.setenv("VISITLENS_DATABASE__APP_PASSWORD", "from-env")
    settings = load_settings()
    assert settings.database.app_password.get_secret_value() == "from-env"
    assert settings.database.url is not None
    assert "VISITLENS_DATABASE__URL" not in os.environ
    monkeypatch.setenv("VISITLENS_DATABASE__URL", "postgresql://explicit@db/visitlens")
    explicit = load_settings().database.url
    assert explicit is not None and "explicit" in explicit.get_secret_value()
