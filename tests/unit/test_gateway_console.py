"""The local gateway serves the built console at `/` (a page for every client-side route, hashed
assets cached for good) with a strict Content-Security-Policy, and never answers an API path with
the app."""

from __future__ import annotations

from pathlib import Path

from starlette.testclient import TestClient

from visitlens.adapters.event_tokens import EventTokenIssuer
from visitlens_dev.runtime.gateway import Gateway


def test_console_pages_assets_and_headers(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text('<div id="root"></div>')
    (dist / "assets" / "index-abc.js").write_text("console.log(1)")
    gateway = Gateway([], EventTokenIssuer(tmp_path / "issuer"), web_dir=dist)
    with TestClient(gateway.app()) as client:
        for path in ("/", "/overview", "/sites/123?x=1"):
            page = client.get(path)
            assert page.status_code == 200 and page.text == '<div id="root"></div>'
            csp = page.headers["content-security-policy"]
            assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
            assert page.headers["cache-control"] == "no-cache"
        asset = client.get("/assets/index-abc.js")
        assert asset.status_code == 200 and "immutable" in asset.headers["cache-control"]
        assert asset.headers["x-content-type-options"] == "nosniff"
        assert client.get("/assets/%2e%2e/%2e%2e/%2e%2e/etc/passwd").status_code == 404
        assert client.get("/assets/missing.js").status_code == 404
        for api in ("/v1/unknown", "/.well-known/none", "/brokers/x"):
            assert client.get(api).headers["content-type"].startswith("application/json")
        assert client.post("/overview").status_code == 404  # pages are GET only


def test_without_a_build_there_is_no_console(tmp_path: Path) -> None:
    gateway = Gateway([], EventTokenIssuer(tmp_path / "issuer"), web_dir=None)
    with TestClient(gateway.app()) as client:
        assert client.get("/").status_code == 404
