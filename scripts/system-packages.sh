#!/usr/bin/env bash
# Debian packages carelens uses. `system-packages.sh demo`: tesseract only (burned-in text in
# DICOM, the demo's de-identification stage). `system-packages.sh` (all, for the tests): also
# PostgreSQL (app database), Chromium and its driver (browser tests), bcftools (genomics benchmark).
set -euo pipefail
need=()
command -v tesseract >/dev/null || need+=(tesseract-ocr tesseract-ocr-eng)
if [ "${1:-all}" != demo ]; then
  command -v pg_ctlcluster >/dev/null || need+=(postgresql)
  command -v chromium >/dev/null || need+=(chromium chromium-driver)
  command -v bcftools >/dev/null || need+=(bcftools tabix)
fi
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing Debian packages: ${need[*]} (run as root or install them)" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
