#!/bin/bash
# rpm %pre ($1: 1 on install, 2 on upgrade). The group must exist before rpm unpacks
# /etc/evidence-agent/agent.toml as root:evidence-agent. These are the same commands as
# ensure_user in packaging/setup.sh, which is not unpacked yet at this point.
set -euo pipefail

if ! getent group evidence-agent >/dev/null; then
  groupadd --system evidence-agent
fi
if ! getent passwd evidence-agent >/dev/null; then
  useradd --system --gid evidence-agent --home-dir /var/lib/evidence-agent --no-create-home \
    --shell /usr/sbin/nologin --comment "evidence-agent SOC 2 evidence collector" evidence-agent
fi
