"""The `match` function through functions-framework: real photos (../shared/faces, research data
used only in tests) against a tenant gallery; embeddings; roles; bad uploads."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest

from tests.conftest import SHARED, TenantWorld, load_function
from visitlens.adapters.endpoints import Endpoints
from visitlens.adapters.gallery import MilvusGallery
from visitlens.adapters.onnx_models import load_models
from visitlens.config import Settings
from visitlens.ports import GalleryRow, PersonKind
from visitlens.vision.pipeline import FacePipeline
from visitlens.vision.types import as_image

pytestmark = pytest.mark.integration
LFW = SHARED / "faces" / "lfw"


def photo(name: str) -> bytes:
    return (LFW / name.rsplit("_", 1)[0] / name).read_bytes()


@pytest.fixture(scope="module")
async def match_client(
    function_environment: None, shared_faces: Path
) -> AsyncIterator[httpx.AsyncClient]:
    app = load_function("match")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://match.test"
    ) as client:
        yield client


@pytest.fixture
async def enrolled(
    world: TenantWorld, stack_settings: Settings, endpoints: Endpoints, models_dir: Path
) -> dict[str, uuid.UUID]:
    """Aaron Peirsol as a customer of the world's tenant, from one photo."""
    settings = stack_settings.model_copy(
        update={"models": stack_settings.models.model_copy(update={"dir": models_dir})}
    )
    pipeline = FacePipeline(*load_models(settings))
    image = as_image(cv2.imdecode(np.frombuffer(photo("Aaron_Peirsol_0001.jpg"), np.uint8), 1))
    face = max(pipeline.analyze(image, embed_unusable=True), key=lambda f: f.detection.score)
    assert face.embedding is not None
    customer = uuid.uuid4()
    gallery = MilvusGallery(endpoints.milvus_uri, stack_settings.milvus, "sface-2021dec", 128)
    await gallery.insert(
        [
            GalleryRow(
                uuid.uuid4(),
                uuid.UUID(world.tenant_id),
                customer,
                PersonKind.CUSTOMER,
                face.embedding,
            )
        ]
    )
    await gallery.close()
    return {"customer": customer}


def auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def test_the_same_person_is_found_another_is_not(
    match_client: httpx.AsyncClient, world: TenantWorld, enrolled: dict[str, uuid.UUID]
) -> None:
    path = f"/v1/match/{world.tenant_id}"
    same = await match_client.post(
        path, headers=auth(world.admin),
        files={"image": ("a.jpg", photo("Aaron_Peirsol_0003.jpg"), "image/jpeg")},
    )  # fmt: skip
    assert same.status_code == 200, same.text
    faces = same.json()["faces"]
    best = max(faces, key=lambda f: f["detector_score"])
    assert best["matches"][0]["person_id"] == str(enrolled["customer"])
    assert best["matches"][0]["same_person"] is True

    other = await match_client.post(
        path, headers=auth(world.manager_a),
        files={"image": ("b.jpg", photo("Colin_Powell_0040.jpg"), "image/jpeg")}, data={"top_k": "3"},
    )  # fmt: skip
    assert other.status_code == 200, other.text
    for face in other.json()["faces"]:
        assert all(not m["same_person"] for m in face["matches"])


async def test_embedding_queries(
    match_client: httpx.AsyncClient, world: TenantWorld, enrolled: dict[str, uuid.UUID]
) -> None:
    path = f"/v1/match/{world.tenant_id}"
    vector = np.random.default_rng(1).normal(size=128)
    vector = (vector / np.linalg.norm(vector)).tolist()
    ok = await match_client.post(path, headers=auth(world.admin),
                                 json={"embedding": vector, "model_id": "sface-2021dec"})  # fmt: skip
    assert ok.status_code == 200 and ok.json()["model_id"] == "sface-2021dec"
    for body, field in (
        ({"embedding": vector, "model_id": "arcface-r100"}, "body.model_id"),
        ({"embedding": vector[:100], "model_id": "sface-2021dec"}, "body.embedding"),
        ({"embedding": [0.5] * 128, "model_id": "sface-2021dec"}, "body.embedding"),
        ({"embedding": vector, "model_id": "sface-2021dec", "top_k": 0}, "body.top_k"),
    ):
        response = await match_client.post(path, headers=auth(world.admin), json=body)
        assert response.status_code == 422, body
        assert response.json()["errors"][0]["field"] == field


async def test_roles_and_bad_uploads(match_client: httpx.AsyncClient, world: TenantWorld) -> None:
    path = f"/v1/match/{world.tenant_id}"
    jpeg = photo("Aaron_Peirsol_0001.jpg")
    assert (await match_client.post(path, files={"image": ("a.jpg", jpeg)})).status_code == 401
    worker = await match_client.post(
        path, headers=auth(world.worker_a), files={"image": ("a.jpg", jpeg)}
    )
    assert worker.status_code == 403
    foreign = await match_client.post(f"/v1/match/{uuid.uuid4()}", headers=auth(world.admin),
                                      files={"image": ("a.jpg", jpeg)})  # fmt: skip
    assert foreign.status_code == 403
    blank = cv2.imencode(".png", np.full((200, 200, 3), 127, np.uint8))[1].tobytes()
    cases = [
        ({"image": ("x.jpg", b"not an image at all")}, 422, "image"),
        ({"image": ("x.png", blank)}, 422, "image"),
        ({"other": ("x.jpg", jpeg)}, 422, "image"),
    ]
    for files, status, field in cases:
        response = await match_client.post(path, headers=auth(world.admin), files=files)
        assert response.status_code == status, response.text
        assert response.json()["errors"][0]["field"] == field
    text = await match_client.post(path, headers={**auth(world.admin), "content-type": "text/plain"},
                                   content=b"hello")  # fmt: skip
    assert text.status_code == 415
    huge = await match_client.post(path, headers=auth(world.admin),
                                   files={"image": ("big.jpg", b"0" * (11 * 1024 * 1024))})  # fmt: skip
    assert huge.status_code == 413
