#!/usr/bin/env bash
# A container engine and the local images the container tests need, on a machine without a
# public registry (tests/test_container_engine.py calls it; docs/deployment.md, "Checks").
#
#   bash scripts/container_images.sh engine   # install podman & co. from Debian, configure
#   bash scripts/container_images.sh images   # build the base image and the stand-ins
#   bash scripts/container_images.sh clean    # remove every image `images` built
#
# `engine` installs (when missing) podman, runc, netavark, aardvark-dns (service names on
# compose networks), iptables, debootstrap and docker-compose, and writes
# /etc/containers/containers.conf only when there is none (runc, cgroupfs, file events:
# this machine has no systemd and crun cannot use its cgroups).
#
# `images` is idempotent: an image that exists with the current recipe is kept.
#   localhost/debian-base:bookworm        Debian minbase from debootstrap, the host's apt sources
#                                         and CA bundle (HTTPS egress is re-signed here)
#   docker.io/library/python:3.11-slim    stand-in: the base plus Debian's python3, python3-venv
#   docker.io/prom/prometheus:TAG         stand-ins built from Debian's packages (prometheus,
#   docker.io/prom/alertmanager:TAG       prometheus-alertmanager, victoria-metrics), with the
#   docker.io/victoriametrics/...:TAG     official images' entrypoints, user and wget, tagged
#                                         with the names docker-compose.yml uses
# Runs as root (rootful podman). Exit status 3: no engine can be had here (not root, no apt,
# packages not installable); the tests then skip, or fail when CI is set.
#
# Stand-ins carry the label io.speed-kings.stand-in. An image of the same name without it
# (a real one, pulled from a registry) is never replaced. Grafana has no Debian package and
# no stand-in.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BASE=localhost/debian-base:bookworm
SLIM=docker.io/library/python:3.11-slim
LABEL=io.speed-kings.stand-in
SUITE=bookworm

log() { printf '== %s\n' "$*" >&2; }
die() { printf 'container_images.sh: %s\n' "$*" >&2; exit 1; }
# Exit status 3: no engine can be had on this machine (the tests skip unless CI is set).
unavailable() { printf 'container_images.sh: %s\n' "$*" >&2; exit 3; }

# --- engine ------------------------------------------------------------------------------------
ENGINE_PACKAGES=(podman runc netavark aardvark-dns iptables debootstrap docker-compose)

# A limit as containers.conf wants it: the hard limit of this shell, at most `cap`.
limit() {
  local hard=$1 cap=$2
  if [ "$hard" = unlimited ] || [ "$hard" -gt "$cap" ]; then hard=$cap; fi
  echo "$hard:$hard"
}

engine() {
  # Rootful podman: debootstrap, and bridge networks with service names, need root.
  [ "$(id -u)" -eq 0 ] || unavailable "not root: the container stage runs rootful podman"
  local missing=() pkg
  for pkg in "${ENGINE_PACKAGES[@]}"; do
    if [ "$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null)" != installed ]; then
      missing+=("$pkg")
    fi
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    command -v apt-get >/dev/null 2>&1 || unavailable "no apt-get to install ${missing[*]}"
    log "installing Debian packages: ${missing[*]}"
    { apt-get update -qq \
      && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null; } || unavailable "apt-get could not install ${missing[*]}"
  fi
  local conf=/etc/containers/containers.conf
  if [ -e "$conf" ]; then
    log "$conf exists: left as it is (this script writes runc, cgroupfs, file events)"
  else
    log "writing $conf (runc, cgroupfs, file events, the ulimits this machine allows)"
    mkdir -p /etc/containers
    cat >"$conf" <<CONF
# Written by speed-kings scripts/container_images.sh for a machine without systemd.
[containers]
# podman asks for more than the hard limits; raising them is not permitted everywhere.
default_ulimits = ["nofile=$(limit "$(ulimit -Hn)" 1048576)", "nproc=$(limit "$(ulimit -Hu)" 32768)"]

[network]
network_backend = "netavark"

[engine]
# crun fails on hybrid cgroups ("cgroups in hybrid mode not supported").
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
  fi
  podman info --format '{{.Host.OCIRuntime.Name}}' >/dev/null || die "podman info failed"
  log "engine: $(podman --version), runtime $(podman info --format '{{.Host.OCIRuntime.Name}}')"
}

# --- images ------------------------------------------------------------------------------------
# The label value of an image, empty when it has none; fails when the image does not exist.
label_of() {
  podman image inspect --format "{{index .Labels \"$LABEL\"}}" "$1" 2>/dev/null | sed 's/<no value>//'
}

# Whether to (re)build the stand-in $1 whose recipe digest is $2.
needs_build() {
  local image=$1 recipe=$2 current
  if ! podman image exists "$image"; then return 0; fi
  current="$(label_of "$image")"
  if [ -z "$current" ]; then
    log "$image exists and is not a stand-in: used as it is"
    return 1
  fi
  if [ "$current" = "$recipe" ]; then
    log "$image: cached"
    return 1
  fi
  log "$image: recipe changed, rebuilding"
  return 0
}

digest() { sha256sum | cut -c1-16; }

mirror() {
  local uri
  uri="$(sed -n 's/^URIs:[[:space:]]*//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)"
  [ -n "$uri" ] || uri="$(awk '$1 == "deb" {print $2; exit}' /etc/apt/sources.list 2>/dev/null)"
  echo "${uri:-http://deb.debian.org/debian}"
}

base_image() {
  local recipe
  # The recipe is this function's text: editing it rebuilds the image.
  recipe="base-$(declare -f base_image | digest)"
  needs_build "$BASE" "$recipe" || return 0
  local rootfs started=$SECONDS
  rootfs="$(mktemp -d /var/tmp/speed-kings-rootfs.XXXXXX)"
  # shellcheck disable=SC2064
  trap "rm -rf '$rootfs' '$rootfs.log'" EXIT
  log "debootstrap $SUITE from $(mirror) (about a minute)"
  debootstrap --variant=minbase "$SUITE" "$rootfs" "$(mirror)" >"$rootfs.log" 2>&1 \
    || { tail -20 "$rootfs.log" >&2; rm -f "$rootfs.log"; die "debootstrap failed"; }
  rm -f "$rootfs.log"
  # The host's apt sources (the mirror this machine may use) and settings.
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    rm -f "$rootfs/etc/apt/sources.list"
    cp /etc/apt/sources.list.d/debian.sources "$rootfs/etc/apt/sources.list.d/"
  fi
  cp /etc/apt/apt.conf.d/99* "$rootfs/etc/apt/apt.conf.d/" 2>/dev/null || true
  rm -f "$rootfs/etc/apt/apt.conf.d/99needrestart"
  # As the official Debian images: no downloaded packages or caches left in image layers.
  cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'APT'
APT::Keep-Downloaded-Packages "false";
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
APT
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin \
    "$rootfs"/var/cache/apt/archives/*.deb
  # HTTPS egress is re-signed by a local CA here: the host's bundle, for apt and pip.
  mkdir -p "$rootfs/usr/local/share/ca-certificates" "$rootfs/etc/ssl"
  cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/" \
    2>/dev/null || true
  cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/host-ca-bundle.crt"
  tar -C "$rootfs" -c . | podman import --quiet \
    --change 'CMD ["/bin/bash"]' \
    --change "LABEL $LABEL=$recipe" \
    --change 'ENV PIP_CERT=/etc/ssl/host-ca-bundle.crt' \
    --change 'ENV REQUESTS_CA_BUNDLE=/etc/ssl/host-ca-bundle.crt' \
    --change 'ENV SSL_CERT_FILE=/etc/ssl/host-ca-bundle.crt' \
    - "$BASE" >/dev/null
  log "$BASE built in $((SECONDS - started)) s"
}

# build IMAGE CONTAINERFILE-TEXT: a stand-in on the base image, labelled with its recipe.
build_stand_in() {
  local image=$1 containerfile=$2 recipe dir started=$SECONDS
  recipe="$(printf '%s\n%s' "$containerfile" "$(label_of "$BASE")" | digest)"
  needs_build "$image" "$recipe" || return 0
  dir="$(mktemp -d)"
  printf '%s\nLABEL %s=%s\n' "$containerfile" "$LABEL" "$recipe" >"$dir/Containerfile"
  log "building $image"
  podman build --quiet --format docker --pull=never -t "$image" -f "$dir/Containerfile" "$dir" \
    >/dev/null || { rm -rf "$dir"; die "building $image failed"; }
  rm -rf "$dir"
  log "$image built in $((SECONDS - started)) s"
}

# The image name docker-compose.yml gives a service's `image: REPO:TAG` (first match).
compose_image() {
  local name
  name="$(sed -n "s|^[[:space:]]*image:[[:space:]]*\\($1:[^[:space:]]*\\).*|\\1|p" \
    "$ROOT/docker-compose.yml" | head -1)"
  [ -n "$name" ] || die "docker-compose.yml has no image $1:TAG"
  echo "docker.io/$name"
}

APT_INSTALL='RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends'
APT_CLEAN='>/dev/null && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/apt /var/log/dpkg.log'

images() {
  [ "$(id -u)" -eq 0 ] || die "not root: the images are built with rootful podman"
  command -v podman >/dev/null 2>&1 || die "podman is not installed: run '$0 engine'"
  base_image

  # Like the official image: python3 that can make a venv (ensurepip), nothing else.
  build_stand_in "$SLIM" "FROM $BASE
$APT_INSTALL python3 python3-venv $APT_CLEAN
CMD [\"python3\"]"

  # The official images run as nobody from a working dir holding their data; the compose
  # file's healthchecks use wget. Entrypoints take the compose file's flags.
  build_stand_in "$(compose_image prom/prometheus)" "FROM $BASE
$APT_INSTALL prometheus wget $APT_CLEAN \\
 && mkdir -p /prometheus && chown nobody:nogroup /prometheus
USER nobody
WORKDIR /prometheus
VOLUME [\"/prometheus\"]
EXPOSE 9090
ENTRYPOINT [\"/usr/bin/prometheus\"]
CMD [\"--config.file=/etc/prometheus/prometheus.yml\", \"--storage.tsdb.path=/prometheus\"]"

  build_stand_in "$(compose_image prom/alertmanager)" "FROM $BASE
$APT_INSTALL prometheus-alertmanager wget $APT_CLEAN \\
 && mkdir -p /alertmanager /etc/alertmanager && chown nobody:nogroup /alertmanager \\
 && cp /etc/prometheus/alertmanager.yml /etc/alertmanager/alertmanager.yml
USER nobody
WORKDIR /alertmanager
VOLUME [\"/alertmanager\"]
EXPOSE 9093
ENTRYPOINT [\"/usr/bin/prometheus-alertmanager\"]
CMD [\"--config.file=/etc/alertmanager/alertmanager.yml\", \"--storage.path=/alertmanager\"]"

  # The official image runs as root with its binary at /victoria-metrics-prod.
  build_stand_in "$(compose_image victoriametrics/victoria-metrics)" "FROM $BASE
$APT_INSTALL victoria-metrics wget $APT_CLEAN \\
 && ln -s /usr/bin/victoria-metrics /victoria-metrics-prod && mkdir -p /storage
EXPOSE 8428
ENTRYPOINT [\"/victoria-metrics-prod\"]"

  # Stand-ins a recipe change replaced, untagged now.
  podman image prune -f --filter "label=$LABEL" >/dev/null
}

clean() {
  command -v podman >/dev/null 2>&1 || return 0
  local image
  for image in $SLIM "$(compose_image prom/prometheus)" "$(compose_image prom/alertmanager)" \
    "$(compose_image victoriametrics/victoria-metrics)" $BASE; do
    if podman image exists "$image" && [ -n "$(label_of "$image")" ]; then
      log "removing $image"
      podman rmi -f "$image" >/dev/null
    fi
  done
}

case "${1:-}" in
  engine) engine ;;
  images) images ;;
  clean) clean ;;
  *) echo "usage: $0 engine|images|clean" >&2; exit 2 ;;
esac
