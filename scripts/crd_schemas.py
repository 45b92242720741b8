"""Extract the OpenAPI v3 schema of each served version of CustomResourceDefinitions into
charts/schemas/<group>/<kind>-<version>.json, for validating the deployment files offline
(tests/contract/test_deploy.py). Usage: python scripts/crd_schemas.py CRD.yaml [...]

The CRD files come from the projects themselves at a pinned commit (charts/schemas/SOURCES.md)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

OUT = Path(__file__).resolve().parents[1] / "charts" / "schemas"


def extract(path: Path) -> list[Path]:
    written = []
    for doc in yaml.safe_load_all(path.read_text()):
        if not doc or doc.get("kind") != "CustomResourceDefinition":
            continue
        group, kind = doc["spec"]["group"], doc["spec"]["names"]["kind"]
        for version in doc["spec"]["versions"]:
            if not version.get("served", True):
                continue
            schema = version.get("schema", {}).get("openAPIV3Schema")
            if schema is None:
                continue
            target = OUT / group / f"{kind}-{version['name']}.json"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(schema, sort_keys=True, separators=(",", ":")) + "\n")
            written.append(target)
    return written


if __name__ == "__main__":
    for argument in sys.argv[1:]:
        for made in extract(Path(argument)):
            print(made.relative_to(OUT))  # noqa: T201 - a command-line tool
