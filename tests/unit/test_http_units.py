"""Pure HTTP pieces: route matching (404/405), problem documents, cursors, function specs."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict, ValidationError

from visitlens.errors import ConfigurationError, InvalidInput, MethodNotAllowed, NotFound
from visitlens.http.problems import from_validation_error, problem_response
from visitlens.http.router import Router
from visitlens.http.routes.api import ROUTES
from visitlens.http.surface import EVENT_ROUTES, all_routes, openapi_document
from visitlens.pagination import decode_cursor, encode_cursor
from visitlens.validation import refuse_nul
from visitlens_dev.runtime.gateway import _bucket_matches
from visitlens_dev.runtime.spec import BucketTrigger, discover, load


def router() -> Router[object]:
    async def services() -> object:
        return object()

    return Router(ROUTES, services, lambda s: s, 1024)  # type: ignore[arg-type, return-value]


def test_route_matching_converts_uuids_and_distinguishes_404_405() -> None:
    tid, sid = uuid.uuid4(), uuid.uuid4()
    route, params = router().match("GET", f"/v1/tenants/{tid}/sites/{sid}")
    assert route.handler.__name__ == "get_site" and params == {"tenant_id": tid, "site_id": sid}
    with pytest.raises(NotFound):
        router().match("GET", "/v1/tenants/not-a-uuid/sites")
    with pytest.raises(MethodNotAllowed):
        router().match("PUT", f"/v1/tenants/{tid}")


def test_every_protected_route_declares_roles() -> None:
    for route in ROUTES:
        assert route.public or route.roles or route.path == "/v1/auth/me", route.path
        if route.method in ("POST", "PATCH") and route.path != "/v1/auth/token":
            assert route.body is not None, route.path


def test_problem_documents_name_every_field() -> None:
    class Body(BaseModel):
        model_config = ConfigDict(extra="forbid")
        a: int
        b: str

    with pytest.raises(ValidationError) as caught:
        Body.model_validate({"a": "x", "c": 1})
    error = from_validation_error(caught.value, "body")
    assert {p.field for p in error.problems} == {"body.a", "body.b", "body.c"}
    response = problem_response(error)
    assert response.status_code == 422 and response.media_type == "application/problem+json"


def test_cursor_round_trip_and_garbage() -> None:
    when, row = datetime(2026, 11, 21, 10, 0, tzinfo=UTC), uuid.uuid4()
    assert decode_cursor(encode_cursor(when, row)) == (when, row)
    for bad in ("", "!!!", "e30", encode_cursor(when, row)[:-3]):
        with pytest.raises(InvalidInput):
            decode_cursor(bad)


def test_openapi_lists_every_route() -> None:
    doc = openapi_document()
    operations = sum(len(v) for v in doc["paths"].values())
    assert operations == len(all_routes()) + len(EVENT_ROUTES) > len(ROUTES)
    assert "/v1/match/{tenant_id}" in doc["paths"]
    for path in ("/v1/events", "/brokers/{broker}", "/minio/events"):  # fuzzed too
        assert "post" in doc["paths"][path]


def test_function_specs_load_and_validate(tmp_path: Path) -> None:
    names = {spec.name for spec in discover()}
    assert "api" in names
    bad = tmp_path / "oops"
    bad.mkdir()
    (bad / "function.yaml").write_text(
        "name: oops\ntarget: oops\nsignature: cloudevent\n"
        "triggers: [{kind: cron, name: x, schedule: 'every day'}]\n"
    )
    with pytest.raises(ConfigurationError, match="cron"):
        load(bad)
    (bad / "function.yaml").write_text("name: other\ntarget: x\nsignature: http\n"
                                       "triggers: [{kind: http, path_prefixes: ['/x']}]\n")  # fmt: skip
    with pytest.raises(ConfigurationError, match="differs from its folder"):
        load(bad)


def test_bucket_trigger_matching() -> None:
    trigger = BucketTrigger(kind="bucket", bucket="staff-faces", prefix="t1/", suffix=".jpg")
    assert _bucket_matches(trigger, "s3:ObjectCreated:Put", "staff-faces", "t1/a/b.jpg")
    assert not _bucket_matches(trigger, "s3:ObjectRemoved:Delete", "staff-faces", "t1/a.jpg")
    assert not _bucket_matches(trigger, "s3:ObjectCreated:Put", "faces-raw", "t1/a.jpg")
    assert not _bucket_matches(trigger, "s3:ObjectCreated:Put", "staff-faces", "t2/a.jpg")


def test_nul_characters_are_refused_by_path_wherever_they_hide() -> None:
    shots = [{"embedding": [0.1] * 128, "note": "ok"}, {"embedding": [0.2, "a\x00b"]}]
    with pytest.raises(InvalidInput) as caught:
        refuse_nul({"shots": shots, "tags": ["x", ["deep\x00"]], "k\x00": 1}, "data")
    assert {p.field for p in caught.value.problems} == {
        "data.shots.1.embedding.1", "data.tags.1.0", "data",
    }  # fmt: skip
    refuse_nul({"shots": [{"embedding": [0.1] * 128, "quality": 0.5}]}, "data")  # nothing to say
