#!/bin/sh
# Setup step of eddy-bench: installs what the bench drives besides eddy itself, from Debian's packages, when missing:
#   nginx-light  the anchor server (Debian's nginx build; the bench runs it as its own child, not as a service)
#   wrk          the HTTP/1.1 load generator
# Idempotent: does nothing when both are already installed. Needs root (or sudo).
set -eu

missing=""
if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
    missing="$missing nginx-light"
fi
if ! command -v wrk >/dev/null 2>&1; then
    missing="$missing wrk"
fi
if [ -z "$missing" ]; then
    echo "bench/setup.sh: nginx and wrk are installed"
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
