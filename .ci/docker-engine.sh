#!/usr/bin/env bash
# Make sure a Docker engine runs (as root on Debian/Ubuntu): install docker.io, debootstrap, docker-registry and git
# when missing, start dockerd when no engine answers. Used by .ci/run and recipes/demo.sh.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

missing=()
command -v git >/dev/null || missing+=(git)
command -v dockerd >/dev/null || missing+=(docker.io)
[ -x /usr/sbin/debootstrap ] || command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v docker-registry >/dev/null || missing+=(docker-registry)  # the tests start their own, on loopback
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]}"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
  echo "starting dockerd (log: /tmp/repropack-dockerd.log)"
  nohup dockerd >/tmp/repropack-dockerd.log 2>&1 &
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  if ! docker info >/dev/null 2>&1; then
    echo "dockerd did not start:"; tail -n 30 /tmp/repropack-dockerd.log; exit 3
  fi
fi
echo "docker engine $(docker version --format '{{.Server.Version}}')"
