#!/bin/sh
# Setup step of eddy-bench: installs what the bench drives besides eddy itself, from Debian's packages, when missing:
#   nginx-light     the anchor server (Debian's nginx build; the bench runs it as its own child, not as a service)
#   wrk             the HTTP/1.1 load generator (scenarios a, b, c, d, f, h)
#   nghttp2-client  h2load, the HTTP/2 load generator (scenario e)
#   openssl         makes the certificate of (d) and (e) and checks the cipher each server negotiates
#   curl            checks the bodies over TLS and HTTP/2
# fincore (util-linux, in every Debian install) shows that (f) really emptied the page cache.
# Idempotent: does nothing when all are already installed. Needs root (or sudo).
set -eu

missing=""
if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
    missing="$missing nginx-light"
fi
for pair in wrk:wrk h2load:nghttp2-client openssl:openssl curl:curl; do
    if ! command -v "${pair%%:*}" >/dev/null 2>&1; then
        missing="$missing ${pair#*:}"
    fi
done
if [ -z "$missing" ]; then
    echo "bench/setup.sh: nginx, wrk, h2load, openssl and curl are installed"
    exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
fi
echo "bench/setup.sh: installing$missing"
$sudo apt-get update
# shellcheck disable=SC2086 # $missing is a list of package names
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends $missing
