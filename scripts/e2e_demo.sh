#!/bin/sh
# The whole path once: a synthetic RTSP camera -> the edge worker -> the functions -> PostgreSQL,
# Milvus, S3 -> the report API -> the web console in headless Chromium. Exit 0 only if the
# counted visits equal the scripted ones. Artifacts (logs, report.json, metrics scrape, the
# console's screenshot, summary.json) under the folder given (default build/e2e).
set -eu
cd "$(dirname "$0")/.."
exec .venv/bin/visitlens e2e --artifacts "${1:-build/e2e}"
