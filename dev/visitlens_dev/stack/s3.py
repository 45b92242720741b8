"""The embedded S3 server (SeaweedFS ``weed mini``) and the buckets visitlens needs."""

from __future__ import annotations

import json
import logging
import os

from minio import Minio
from minio.commonconfig import ENABLED, Filter
from minio.error import MinioException
from minio.lifecycleconfig import Expiration, LifecycleConfig, Rule
from urllib3.exceptions import HTTPError

from visitlens.adapters.object_store import minio_client
from visitlens.config import S3Settings, Settings
from visitlens_dev.stack.processes import (
    find_binary,
    require_free_ports,
    spawn,
    tcp_open,
    wait_until,
)

logger = logging.getLogger(__name__)

RAW_EXPIRY_RULE_ID = "faces-raw-expiry"


def seaweed_ports(settings: Settings) -> dict[str, int]:
    base = settings.stack.seaweed_port_base
    return {
        "seaweed-master": base,
        "seaweed-master-grpc": base + 1,
        "seaweed-volume": base + 2,
        "seaweed-volume-grpc": base + 3,
        "seaweed-filer": base + 4,
        "seaweed-filer-grpc": base + 5,
        "s3": settings.stack.s3_port,
        "s3-grpc": settings.stack.s3_port + 1,
    }


def start(settings: Settings) -> tuple[int, str]:
    """Start ``weed mini`` with S3 auth from the configured keys; return (pid, endpoint)."""
    host = settings.stack.host
    ports = seaweed_ports(settings)
    require_free_ports(host, ports)
    root = (settings.data_dir / "s3").resolve()
    root.mkdir(parents=True, exist_ok=True)
    identities = root / "s3-identities.json"
    identities.write_text(json.dumps(_identities(settings.s3)))
    identities.chmod(0o600)
    log = (settings.data_dir / "logs" / "s3.log").resolve()
    argv = [
        str(find_binary("weed")),
        "mini",
        f"-dir={root / 'data'}",
        f"-ip={host}",
        f"-ip.bind={host}",
        "-master.telemetry=false",
        f"-master.port={ports['seaweed-master']}",
        f"-master.port.grpc={ports['seaweed-master-grpc']}",
        f"-volume.port={ports['seaweed-volume']}",
        f"-volume.port.grpc={ports['seaweed-volume-grpc']}",
        f"-filer.port={ports['seaweed-filer']}",
        f"-filer.port.grpc={ports['seaweed-filer-grpc']}",
        f"-s3.port={ports['s3']}",
        f"-s3.port.grpc={ports['s3-grpc']}",
        f"-s3.config={identities}",
        "-webdav=false",
        "-admin.ui=false",
        # unused catalogs on fixed default ports (8181, 9101): two stacks started at once (the
        # `make test` workers) raced for them and the second SeaweedFS died at start-up
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
    ]
    (root / "data").mkdir(exist_ok=True)
    env = dict(os.environ)
    env.pop("AWS_ACCESS_KEY_ID", None)
    env.pop("AWS_SECRET_ACCESS_KEY", None)
    pid = spawn("seaweedfs", argv, log, env=env)
    endpoint = f"{host}:{ports['s3']}"
    wait_until(
        "seaweedfs s3",
        lambda: tcp_open(host, ports["s3"]) and healthy(settings.s3, endpoint),
        timeout_s=settings.stack.start_timeout_s,
        pid=pid,
        log_path=log,
    )
    return pid, endpoint


def _identities(s3: S3Settings) -> dict[str, object]:
    return {
        "identities": [
            {
                "name": "visitlens",
                "credentials": [
                    {
                        "accessKey": s3.access_key.get_secret_value(),
                        "secretKey": s3.secret_key.get_secret_value(),
                    }
                ],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }


def client(s3: S3Settings, endpoint: str) -> Minio:
    return minio_client(s3, endpoint)


def healthy(s3: S3Settings, endpoint: str) -> bool:
    try:
        client(s3, endpoint).list_buckets()
    except (MinioException, HTTPError, OSError, ValueError):
        return False
    return True


def ensure_buckets(s3: S3Settings, endpoint: str) -> None:
    """Create ``faces-raw`` (with its expiration rule) and ``faces-derived``; idempotent."""
    minio = client(s3, endpoint)
    for bucket in (s3.raw_bucket, s3.derived_bucket):
        if not minio.bucket_exists(bucket):
            minio.make_bucket(bucket)
            logger.info("created bucket %s", bucket)
    rule = Rule(
        ENABLED,
        rule_filter=Filter(prefix=""),
        rule_id=RAW_EXPIRY_RULE_ID,
        expiration=Expiration(days=s3.raw_retention_days),
    )
    minio.set_bucket_lifecycle(s3.raw_bucket, LifecycleConfig([rule]))


def raw_expiry_days(s3: S3Settings, endpoint: str) -> int | None:
    """The expiration (days) of the raw bucket's lifecycle rule, as the server reports it."""
    config = client(s3, endpoint).get_bucket_lifecycle(s3.raw_bucket)
    if config is None:
        return None
    for rule in config.rules:
        if rule.rule_id == RAW_EXPIRY_RULE_ID and rule.expiration is not None:
            return rule.expiration.days
    return None
