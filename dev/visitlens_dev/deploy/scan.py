"""`make lint`: checkov's Kubernetes checks over each rendered overlay.

The overlays are built with ``kubectl kustomize`` (as `tests/contract/test_cluster.py` does) and
scanned offline (``--skip-download``: no platform account, no network). A failed check fails the
lint; a skip must name its reason in the resource's own ``checkov.io/skip<n>`` annotation, so it
is read where the resource is. Custom resources (Knative Services, the operators' kinds) are not
checkov's: their lock-down is asserted by tests/contract/test_cluster.py.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CHARTS = Path(__file__).resolve().parents[3] / "charts"
OVERLAYS = ("overlays/dev", "overlays/prod")


def build(target: str) -> str:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        raise SystemExit("kubectl is missing (its kustomize builds the deployment offline)")
    built = subprocess.run(  # noqa: S603 - kubectl on the repository's own charts
        [kubectl, "kustomize", str(CHARTS / target)], capture_output=True, text=True, check=True
    )
    return built.stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkov", required=True, type=Path, help="the checkov executable")
    args = parser.parse_args(argv)
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for target in OVERLAYS:
            rendered = Path(tmp) / (target.replace("/", "-") + ".yaml")
            rendered.write_text(build(target))
            run = subprocess.run(  # noqa: S603 - the pinned checkov on the files written here
                [str(args.checkov), "--file", str(rendered), "--framework", "kubernetes",
                 "--compact", "--quiet", "--skip-download", "--output", "cli"],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            summary = [line for line in run.stdout.splitlines() if "checks:" in line]
            sys.stdout.write(f"checkov {target}: {'; '.join(summary) or 'no summary'}\n")
            if run.returncode != 0:
                failed += 1
                sys.stderr.write(run.stdout[-6000:] + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
