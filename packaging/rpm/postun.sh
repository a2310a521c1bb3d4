#!/bin/bash
# rpm %postun ($1: 0 on erase, 1 after an upgrade). Nothing of the ledger, the host key
# (/var/lib/evidence-agent) or the evidence-agent user is removed: they are audit evidence
# and its owner. rpm keeps an edited agent.toml as agent.toml.rpmsave.
set -euo pipefail

if [ -d /run/systemd/system ]; then
  systemctl daemon-reload || true
fi
if [ "$1" -eq 0 ]; then
  echo "evidence-agent: kept /var/lib/evidence-agent (ledger and host key) and the" \
    "evidence-agent user; remove them by hand once the evidence is archived elsewhere"
fi
