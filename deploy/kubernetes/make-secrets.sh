#!/usr/bin/env bash
# Prints the two Secrets a job needs, as YAML for `kubectl apply -f -`:
#   mapreduce-join  the job's token, a certificate and key for the coordinator
#                   (made here with openssl, ECDSA P-256), and the join secret
#                   workers present: mrj1:<token>:<SHA-256 of the certificate>
#   mapreduce-s3    the object store's credentials, from AWS_ACCESS_KEY_ID and
#                   AWS_SECRET_ACCESS_KEY in this shell's environment
# Nothing secret is written anywhere but standard output.
#
#   AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... bash make-secrets.sh | kubectl apply -f -
set -euo pipefail
command -v openssl >/dev/null || { echo "make-secrets.sh needs openssl (apt-get install openssl)" >&2; exit 1; }
: "${AWS_ACCESS_KEY_ID:?set AWS_ACCESS_KEY_ID (and AWS_SECRET_ACCESS_KEY) to the object store's credentials}"
: "${AWS_SECRET_ACCESS_KEY:?set AWS_SECRET_ACCESS_KEY to the object store's secret key}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
    -subj /CN=mapreduce-coordinator -keyout "$tmp/tls.key" -out "$tmp/tls.crt" 2>/dev/null
token=$(openssl rand -hex 32)
# Workers pin the certificate by the SHA-256 of its DER bytes.
fingerprint=$(openssl x509 -in "$tmp/tls.crt" -outform der | openssl dgst -sha256 -r | cut -d' ' -f1)
b64() { base64 -w0; }
cat <<YAML
apiVersion: v1
kind: Secret
metadata:
  name: mapreduce-join
type: Opaque
data:
  token: $(printf %s "$token" | b64)
  join-secret: $(printf 'mrj1:%s:%s' "$token" "$fingerprint" | b64)
  tls.crt: $(b64 <"$tmp/tls.crt")
  tls.key: $(b64 <"$tmp/tls.key")
---
apiVersion: v1
kind: Secret
metadata:
  name: mapreduce-s3
type: Opaque
data:
  AWS_ACCESS_KEY_ID: $(printf %s "$AWS_ACCESS_KEY_ID" | b64)
  AWS_SECRET_ACCESS_KEY: $(printf %s "$AWS_SECRET_ACCESS_KEY" | b64)
YAML
