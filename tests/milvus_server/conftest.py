"""A real Milvus 2.3.5 standalone server, started by the tests inside a private network namespace
(`make test` runs this folder under ``unshare -n``); on the host the fixture refuses to start it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from visitlens_dev.stack.milvus_server import in_private_network, milvus_server


@pytest.fixture(scope="session")
def milvus_server_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not in_private_network():
        pytest.fail(
            "the Milvus server listens on all interfaces: run these tests with "
            "`make test-milvus-server` (inside unshare -n), never on the host",
            pytrace=False,
        )
    with milvus_server(tmp_path_factory.mktemp("milvus-server")) as uri:
        yield uri
