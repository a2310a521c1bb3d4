#!/bin/bash
# rpm %preun ($1: 0 on erase, 1 when an upgrade removes the old version). On erase the
# daemon is stopped (it lets running collections finish and commits) and disabled; rpm keeps
# no configuration-only state to come back to, unlike dpkg's remove. Upgrades are handled by
# the new version's %post.
set -euo pipefail

if [ "$1" -eq 0 ] && command -v systemctl >/dev/null; then
  systemctl --no-reload disable evidence-agent.service >/dev/null 2>&1 || true
  if [ -d /run/systemd/system ]; then
    systemctl stop evidence-agent.service || true
  fi
fi
