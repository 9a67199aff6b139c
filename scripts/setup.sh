#!/usr/bin/env bash
# Set up everything on a fresh machine: apt packages, the .venv, torch (CPU wheel) first, then the project.
set -euo pipefail
cd "$(dirname "$0")/.."
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
  if ! dpkg -s libusb-1.0-0 >/dev/null 2>&1; then
    apt-get update -qq
    apt-get install -y -qq libusb-1.0-0 >/dev/null
  fi
fi
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
# torch first, pinned, so nothing else pulls a CUDA build.
.venv/bin/python -m pip install -q torch==2.13.0
.venv/bin/python -m pip install -q -e ".[sensors,learning,dev,bench,distributed]"
