#!/bin/bash
# rpm %post ($1: 1 on install, 2 or more on upgrade): packaging/setup.sh, shared with the
# .deb's postinst.
set -euo pipefail

if [ "$1" -eq 1 ]; then
  /usr/lib/evidence-agent/setup install
else
  /usr/lib/evidence-agent/setup upgrade
fi
