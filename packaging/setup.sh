#!/bin/bash
# The install step shared by the .deb's postinst and the .rpm's %post, installed as
# /usr/lib/evidence-agent/setup. Idempotent: it can be run again by hand (for example after
# restoring /etc from a backup) and never changes what exists.
#
#   setup install   first installation: the user, the state directory, the host key, then
#                   enable the service, and start it if systemd is running
#   setup upgrade   upgrade or reinstall: the same checks (nothing that exists is touched:
#                   an existing key is never regenerated), then restart the service if it is
#                   enabled
#
# Never touches the ledger or the key: they are audit evidence.
set -euo pipefail

readonly USER_NAME=evidence-agent
readonly HOME_DIR=/var/lib/evidence-agent
readonly CONFIG=/etc/evidence-agent/agent.toml
readonly BIN=/usr/bin/evidence-agent
readonly UNIT=evidence-agent.service

say() {
  echo "evidence-agent: $*"
}

# The system user and its group, without a login shell. Its home is the state directory,
# which is created below with the right mode (useradd would make it 0755 and copy /etc/skel).
ensure_user() {
  if ! getent group "$USER_NAME" >/dev/null; then
    groupadd --system "$USER_NAME"
  fi
  if ! getent passwd "$USER_NAME" >/dev/null; then
    useradd --system --gid "$USER_NAME" --home-dir "$HOME_DIR" --no-create-home \
      --shell /usr/sbin/nologin --comment "evidence-agent SOC 2 evidence collector" "$USER_NAME"
    say "created system user $USER_NAME"
  fi
}

# The ledger, spool and key live here. An existing directory is left as it is, whatever its
# mode: changing it could hide what an admin did on purpose.
ensure_state_dir() {
  if [ ! -d "$HOME_DIR" ]; then
    install -d -m 0700 -o "$USER_NAME" -g "$USER_NAME" "$HOME_DIR"
  fi
}

# agent.toml belongs to root and is readable by the service's group (0640), so that the agent,
# and keygen below, read it as the service user without needing the capability. The .rpm
# installs it so (its %pre creates the group first). dpkg cannot: the group does not exist
# when it unpacks the first install, and an unmodified conffile replaced by an upgrade comes
# back as root:root. So a file still in group root gets the group here; any other group was
# chosen by an admin and stays.
ensure_config_group() {
  if [ -f "$CONFIG" ] && [ "$(stat -c %G "$CONFIG")" = root ]; then
    chgrp "$USER_NAME" "$CONFIG"
    chmod 0640 "$CONFIG"
  fi
}

# Runs the agent as the service user (setpriv, from util-linux: no PAM session, no shell).
as_agent() {
  setpriv --reuid="$USER_NAME" --regid="$USER_NAME" --init-groups -- "$BIN" --config "$CONFIG" "$@"
}

# The host key, created by the agent itself (0600, owned by the service user) if the
# configuration's key_path has none. `key` succeeds when a key (or its public half) exists.
# A failure here does not fail the installation: `run` also creates a missing key, and the
# admin may still have to fix the configuration; the message says what to do.
ensure_key() {
  local out
  if as_agent key >/dev/null 2>&1; then
    return 0
  fi
  if out=$(as_agent keygen 2>&1); then
    local key
    key=$(printf '%s\n' "$out" | sed -n 's/^created //p')
    say "created the host key $key"
    say "give your auditor the verifier key ${key%.key}.vkey (evidence-agent key prints it):"
    printf '%s\n' "$out" | sed -n '2,$p'
  else
    say "could not create the host key: $out"
    say "fix $CONFIG (evidence-agent check-config), then: systemctl restart $UNIT"
  fi
}

# Only with systemd as init: a container or a chroot has no manager to talk to. Enabling works
# without one (it only makes links), so an image built in a chroot starts the agent at boot.
systemd_running() {
  [ -d /run/systemd/system ]
}

start_service() {
  if command -v systemctl >/dev/null; then
    systemctl --no-reload enable "$UNIT" >/dev/null 2>&1 || say "could not enable $UNIT"
  fi
  if systemd_running; then
    systemctl daemon-reload
    systemctl start "$UNIT" || say "$UNIT did not start: journalctl -u $UNIT"
  fi
}

# As Debian's debhelper does: an enabled service is restarted on upgrade (started if it was
# stopped, e.g. by a remove before this reinstall); a disabled one is left alone.
restart_service() {
  if systemd_running; then
    systemctl daemon-reload
    if systemctl --quiet is-enabled "$UNIT"; then
      systemctl restart "$UNIT" || say "$UNIT did not restart: journalctl -u $UNIT"
    fi
  fi
}

main() {
  local action=${1:-}
  case "$action" in
    install | upgrade) ;;
    *)
      echo "usage: $0 install|upgrade" >&2
      exit 2
      ;;
  esac
  ensure_user
  ensure_state_dir
  ensure_config_group
  ensure_key
  if [ "$action" = install ]; then
    start_service
  else
    restart_service
  fi
}

main "$@"
