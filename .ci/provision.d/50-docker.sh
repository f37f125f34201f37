# Docker engine for the container executor's tests (worker/executors/container):
# Debian's docker.io, a dockerd of our own (its own data root, exec root and socket; no
# bridge, no iptables, so nothing on the host's network changes), and localhost/busybox:latest
# built offline from Debian's busybox-static (no registry is reachable in CI).
# Exports DOCKER_HOST (the SDK and the tests find the engine through it) and
# DCM_TEST_DOCKER_IMAGE. Sourced under `set -euo pipefail`; idempotent.
if ! command -v dockerd >/dev/null 2>&1 || [ ! -x /bin/busybox ]; then
  apt-get install -y --no-install-recommends docker.io busybox-static \
    || { apt-get update && apt-get install -y --no-install-recommends docker.io busybox-static; }
fi
_docker_root="${CI_STATE_DIR:-$PWD/.ci-state}/docker"
mkdir -p "$_docker_root/data" "$_docker_root/exec"
# A unix socket path may not exceed 107 bytes: fall back to a short path outside the state dir.
_docker_sock="$_docker_root/docker.sock"
if [ "${#_docker_sock}" -gt 100 ]; then _docker_sock="/run/dcm-docker-$(id -u).sock"; fi
export DOCKER_HOST="unix://$_docker_sock"
_docker_cli=/usr/bin/docker
[ -x "$_docker_cli" ] || _docker_cli="$(command -v docker)"
if ! curl -fsS --unix-socket "$_docker_sock" http://localhost/_ping >/dev/null 2>&1; then
  nohup dockerd --data-root "$_docker_root/data" --exec-root "$_docker_root/exec" \
    -H "$DOCKER_HOST" --pidfile "$_docker_root/dockerd.pid" \
    --bridge=none --iptables=false --ip-masq=false \
    >"$_docker_root/dockerd.log" 2>&1 &
  for _ in $(seq 60); do
    curl -fsS --unix-socket "$_docker_sock" http://localhost/_ping >/dev/null 2>&1 && break
    sleep 1
  done
  curl -fsS --unix-socket "$_docker_sock" http://localhost/_ping >/dev/null \
    || { tail -30 "$_docker_root/dockerd.log"; false; }
fi
if ! "$_docker_cli" image inspect localhost/busybox:latest >/dev/null 2>&1; then
  _rootfs="$(mktemp -d)"
  mkdir -p "$_rootfs/bin" "$_rootfs/tmp" "$_rootfs/etc"
  cp /bin/busybox "$_rootfs/bin/busybox"
  for _applet in $(/bin/busybox --list); do
    [ "$_applet" = busybox ] || ln -sf busybox "$_rootfs/bin/$_applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' \
    >"$_rootfs/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$_rootfs/etc/group"
  chmod 1777 "$_rootfs/tmp"
  tar -C "$_rootfs" -cf "$_rootfs.tar" .
  "$_docker_cli" import -c "ENV PATH=/bin" "$_rootfs.tar" localhost/busybox:latest >/dev/null
  rm -rf "$_rootfs" "$_rootfs.tar"
fi
export DCM_TEST_DOCKER_IMAGE=localhost/busybox:latest
unset _docker_root _docker_sock _docker_cli _rootfs _applet
