"""The local gateway serves the built console at `/` (a page for every client-side route, hashed
assets cached for good) with a strict Content-Security-Policy, and never answers an API path with
the app."""

from __future__ import annotations

import socketserver
import threading
from pathlib import Path

from starlette.testclient import TestClient

from visitlens.adapters.event_tokens import EventTokenIssuer
from visitlens_dev.runtime.gateway import Deployed, Gateway
from visitlens_dev.runtime.spec import discover


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


class _ClosesFirst(socketserver.BaseRequestHandler):
    """A function whose first connection is closed after the request, unanswered (a keep-alive
    connection it was closing as the request arrived); later ones are answered 200."""

    seen: list[bytes] = []

    def handle(self) -> None:
        request = self.request.recv(65536)
        type(self).seen.append(request)
        if len(type(self).seen) == 1:
            return  # closed without a byte of answer
        self.request.sendall(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n"
            b"server: uvicorn\r\nset-cookie: a=1; Path=/x\r\nset-cookie: b=2; Path=/\r\n"
            b"connection: close\r\n\r\n{}"
        )


def _gateway_to(port: int, tmp_path: Path) -> Gateway:
    ingest = next(s for s in discover() if s.name == "ingest")
    deployed = Deployed(ingest, f"http://127.0.0.1:{port}")
    return Gateway([deployed], EventTokenIssuer(tmp_path / "issuer"), web_dir=None)


def test_an_idempotent_request_is_sent_once_more_on_a_stale_connection(tmp_path: Path) -> None:
    """The probe's 1 in 150 under plain load: a gateway 503 for a connection the function had
    just closed. A CloudEvent (counted once by its id) or a GET goes out once more; a plain POST
    does not (it may have been worked). The gateway's answers carry no server banner and the
    API's security headers, HSTS behind a TLS-terminating ingress."""
    _ClosesFirst.seen = []
    with socketserver.TCPServer(("127.0.0.1", 0), _ClosesFirst) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            with TestClient(_gateway_to(server.server_address[1], tmp_path).app()) as client:
                event = client.post("/v1/events", content=b"{}", headers={
                    "content-type": "application/cloudevents+json"})  # fmt: skip
                assert event.status_code == 200 and len(_ClosesFirst.seen) == 2
                assert b"POST /v1/events" in _ClosesFirst.seen[1]
                assert "server" not in event.headers
                # two Set-Cookie lines stay two (a folded one is no cookie at all)
                assert event.headers.get_list("set-cookie") == ["a=1; Path=/x", "b=2; Path=/"]
                assert event.headers["x-content-type-options"] == "nosniff"
                _ClosesFirst.seen = []
                plain = client.post("/v1/events", json={}, headers={"x-forwarded-proto": "https"})
                assert plain.status_code == 503 and plain.headers["retry-after"] == "1"
                assert len(_ClosesFirst.seen) == 1
                assert plain.headers["strict-transport-security"].startswith("max-age=")
                assert plain.headers["cache-control"] == "no-store"
        finally:
            server.shutdown()


def test_the_gateway_drops_idle_connections_before_the_function_closes_them(
    tmp_path: Path,
) -> None:
    """A POST sent on a pooled connection the function is just closing comes back 503 (it cannot
    be sent again: it may have been acted on). The functions run under functions-framework's
    gunicorn UvicornWorker, which keeps an idle connection gunicorn's default ``keepalive``
    seconds and offers no option to change it: the gateway must give up its idle connections
    well before that."""
    from functions_framework._http.gunicorn import UvicornApplication
    from gunicorn.config import Config  # type: ignore[import-untyped]

    from visitlens_dev.runtime import gateway as module

    application = UvicornApplication(object(), "127.0.0.1", 0, False)  # type: ignore[no-untyped-call]
    assert "keepalive" not in application.options  # functions-framework leaves the default
    server_keepalive = Config().keepalive
    assert module.KEEPALIVE_EXPIRY_S <= server_keepalive / 2, (
        module.KEEPALIVE_EXPIRY_S, server_keepalive)  # fmt: skip
