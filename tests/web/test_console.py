"""The web console in Debian's Chromium (Playwright, headless) against the real stack: `visitlens
dev` serves the built console at `/` beside the functions; a seeded tenant with visits ingested
through `/v1/events`. The browser tests themselves are in web/e2e: sign-in and role redirects, an
ended session, the overview's and the reports' numbers equal to the API's, the CSV equal to the
shown totals, sites and cameras created/edited/deleted, a staff photo enrolled and a refused one
with its reason, a face.detected event in the live monitor in < 2 s, merge then undo, erasure with
its receipt, users and API keys, the audit log and its chain; axe on every screen, no console
errors. Photos: ../shared/faces (research data, tests only, never copied into the repository)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.conftest import PASSWORD, REPO, SHARED, DevServer, TenantWorld
from tests.functions.test_ingest import T0, person, track_event
from visitlens.adapters.postgres import Database
from visitlens.ports import DbScope

pytestmark = pytest.mark.integration
CHROMIUM = Path("/usr/bin/chromium")
WEB = REPO / "web"


@pytest.fixture
def console_built() -> None:
    """Chromium and the built console are there; missing is a failure, never a skip."""
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is missing: `make test` installs it (system-deps)")
    if not (WEB / "dist" / "index.html").exists() or shutil.which("npx") is None:
        pytest.fail("the console is not built: `make web` (make test builds it first)")


@pytest.mark.usefixtures("console_built")
async def test_the_console_signs_in_and_shows_the_reports_numbers(
    dev_server: DevServer, world: TenantWorld, db: Database, tmp_path: Path
) -> None:
    async with httpx.AsyncClient(base_url=dev_server.base, timeout=30) as client:
        index = await client.get("/")
        assert index.status_code == 200 and '<div id="root">' in index.text
        csp = index.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
        deep = await client.get("/overview")  # a deep link is the app too
        assert deep.status_code == 200 and deep.text == index.text
        assert (await client.get("/v1/no-such-thing")).status_code == 404  # not the app
        # three passes at site A two days ago: two people, one of them twice, two hours apart
        alice, bob = person(), person()
        headers = {"authorization": f"Bearer {world.worker_a}",
                   "content-type": "application/cloudevents+json"}  # fmt: skip
        made: list[uuid.UUID] = []
        for identity, at in ((alice, T0), (bob, T0 + timedelta(minutes=5)),
                             (alice, T0 + timedelta(hours=2))):  # fmt: skip
            event = {**track_event(world, identity, at), "specversion": "1.0"}
            event["data"]["snapshot_key"] = None
            response = await client.post("/v1/events", headers=headers, json=event)
            assert response.status_code == 200, response.text
            made.append(uuid.UUID(response.json()["customer_id"]))
        # bob's pass as if it had scored 0.47 to alice in a large gallery's review band (what
        # ingest writes then: tests/functions/test_persons.py), for the duplicates review screen
        async with db.transaction(DbScope(uuid.UUID(world.tenant_id))) as conn:
            await conn.execute(
                "INSERT INTO duplicate_suggestions (tenant_id, customer_id, candidate_id, "
                "similarity) VALUES ($1, $2, $3, 0.47)", uuid.UUID(world.tenant_id), made[1], made[0],
            )  # fmt: skip
        # the aggregate function counts them (the visit.recorded events or its minutely tick)
        admin = {"authorization": f"Bearer {world.admin}"}
        deadline = asyncio.get_running_loop().time() + 120
        while True:
            report = await client.get(
                f"/v1/tenants/{world.tenant_id}/reports/visits", headers=admin,
                params={"start": (T0 - timedelta(days=1)).date().isoformat(),
                        "end": (T0 + timedelta(days=1)).date().isoformat()},
            )  # fmt: skip
            if report.status_code == 200 and report.json()["totals"]["visits"] == 3:
                break
            assert asyncio.get_running_loop().time() < deadline, report.text
            await asyncio.sleep(1)

    # what the browser tests post themselves: a staff photo, a group photo (refused: two faces) and
    # a pass of a new person "now" for the live monitor (its snapshot uploaded as the edge does)
    face = sorted((SHARED / "faces" / "lfw" / "Tony_Blair").glob("*.jpg"))[0]
    group = SHARED / "faces" / "group" / "dlib_2008_001009.jpg"
    live = {**track_event(world, person(), datetime.now(UTC) - timedelta(seconds=30)),
            "specversion": "1.0"}  # fmt: skip
    live["data"]["snapshot_key"] = None
    (tmp_path / "live-event.json").write_text(json.dumps(live))
    env = {
        **os.environ,
        "VISITLENS_E2E_MANAGER_EMAIL": world.manager_email,
        "VISITLENS_E2E_WORKER_KEY": world.worker_key,
        "VISITLENS_E2E_SITE": world.site_a,
        "VISITLENS_E2E_CAMERA": world.camera_a,
        "VISITLENS_E2E_FACE": str(face),
        "VISITLENS_E2E_GROUP": str(group),
        "VISITLENS_E2E_EVENT": str(tmp_path / "live-event.json"),
        "VISITLENS_E2E_BASE": dev_server.base,
        "VISITLENS_E2E_EMAIL": world.admin_email,
        "VISITLENS_E2E_PASSWORD": PASSWORD,
        "VISITLENS_E2E_TENANT": world.tenant_id,
        "VISITLENS_E2E_SCREENSHOTS": str(os.environ.get("VISITLENS_UI_SCREENSHOTS", tmp_path)),
        "CHROMIUM": str(CHROMIUM),
        "PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD": "1",
    }
    run = await asyncio.to_thread(
        subprocess.run,
        ["npx", "playwright", "test"],
        cwd=WEB, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    log = Path(os.environ.get("VISITLENS_E2E_LOG", tmp_path / "playwright.log"))
    await asyncio.to_thread(log.write_text, run.stdout + run.stderr)
    assert run.returncode == 0, f"{log}: " + run.stdout[-6000:] + run.stderr[-3000:]
    # the logs of this whole run (every function behind the gateway) hold no secret and no face
    logged = await asyncio.to_thread(dev_server.log.read_bytes)
    settings = dev_server.settings
    for secret in (world.admin, world.manager_a, world.worker_a, world.worker_key, PASSWORD,
                   settings.s3.secret_key.get_secret_value()):  # fmt: skip
        assert secret.encode() not in logged
    assert b"vlr_" not in logged and b"postgresql://" not in logged  # refresh tokens, DSNs
    assert b"\xff\xd8\xff" not in logged  # no JPEG (a face crop) written to a log
    assert not re.search(rb"-?\d\.\d{3,}(?:,\s*-?\d\.\d{3,}){31}", logged)  # no embedding
    expected = sum(f.read_text().count("\ntest(") for f in (WEB / "e2e").glob("*.spec.ts"))
    assert f"{expected} passed" in run.stdout, run.stdout[-3000:]  # none skipped, none flaky
