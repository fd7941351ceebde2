#!/usr/bin/env bash
# What the test command needs besides Rust: the README walk
# (tests/readme-walk.sh) runs the README's curl commands and stops the
# quick start's host with pkill; the JavaScript guest is built with Node.js
# and npm (componentize-js). Installs them (Debian) when missing.
set -euo pipefail
missing=()
command -v curl >/dev/null || missing+=(curl)
command -v pkill >/dev/null || missing+=(procps)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update
    $sudo apt-get install -y --no-install-recommends "${missing[@]}"
fi
