#!/bin/sh
# Idempotent: the raw snapshots expire after 30 days (the platform's retention run removes them
# per tenant setting too; this is the backstop), and staff photos notify the minio-bridge.
set -eu
root=/var/run/visitlens/minio-root  # the secret, mounted as files
mc alias set visitlens https://minio.visitlens.svc.cluster.local "$(cat "$root/user")" "$(cat "$root/password")" --insecure
mc ilm rule add --expire-days 30 visitlens/faces-raw --insecure || true
mc event add visitlens/faces-derived arn:minio:sqs::VISITLENS:webhook \
  --event put,delete --prefix staff-faces/ --insecure || true
mc ilm rule ls visitlens/faces-raw --insecure
mc event ls visitlens/faces-derived --insecure
