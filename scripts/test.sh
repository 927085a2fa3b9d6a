#!/usr/bin/env bash
# The test command of hoist: installs the real peers that the interop tests
# drive, starts ONE private dockerd for the whole run, builds the test images
# without any network, then runs `cargo build --workspace` and
# `cargo test --workspace`. Exits with cargo test's status, or 1 when a crate
# declares a dependency it does not use (cargo machete).
#
#   bash scripts/test.sh                 # everything (and no unused dependency)
#   bash scripts/test.sh -p hoist        # extra arguments go to `cargo test`
#   bash scripts/test.sh -- interop      # ... including a test-name filter
#   bash scripts/test.sh --exec CMD...   # same setup, then run CMD instead of
#                                        # cargo build/test (e.g. --exec bash)
#
# Environment knobs (all optional):
#   HOIST_TEST_STORAGE_DRIVER=overlay2|vfs  force dockerd's storage driver
#   HOIST_TEST_KEEP=1                       keep the temp dir (dockerd log, data)
#   HOIST_TEST_NO_APT=1                     never call apt-get
#
# Exported to the tests (read by crates/hoist-testkit):
#   HOIST_TEST_DOCKER=1, DOCKER_HOST=unix://<tmp>/docker.sock,
#   HOIST_TEST_DOCKER_CLI=<docker client that works with that daemon>,
#   HOIST_TEST_DOCKER_DRIVER=overlay2|vfs, HOIST_TEST_ROOTFS_TAR=<busybox rootfs tar>,
#   HOIST_TEST_BASE_IMAGE=hoist-test/base:latest, HOIST_TEST_APP_IMAGE=hoist-test/app:latest,
#   HOIST_TEST_APP_OUTPUT=hoist-test-ok, HOIST_TEST_S3S_FS=<s3s-fs binary>,
#   HOIST_TEST_CONFORMANCE=<OCI conformance suite binary>,
#   HOIST_TEST_CONFORMANCE_REPORT=<dir for its junit.xml and summary.txt>
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT_DIR=$(pwd)

T0=$(date +%s.%N)
section() { printf '\n==== %s ====\n' "$*"; }
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }'; }
die() { echo "scripts/test.sh: error: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (it installs packages and starts dockerd)"

# ---------------------------------------------------------------- packages
section "packages"
# package -> a file it provides that we need
declare -A PKG_FILE=(
  [docker.io]=/usr/sbin/dockerd
  [skopeo]=/usr/bin/skopeo
  [umoci]=/usr/bin/umoci
  [crun]=/usr/bin/crun
  [docker-registry]=/usr/bin/docker-registry
  [busybox-static]=/bin/busybox
  [openssl]=/usr/bin/openssl
  [chromium]=/usr/bin/chromium
  [apache2-utils]=/usr/bin/htpasswd
)
missing=()
for pkg in docker.io skopeo umoci crun docker-registry busybox-static openssl chromium apache2-utils; do
  if dpkg -s "$pkg" >/dev/null 2>&1 && [ -x "${PKG_FILE[$pkg]}" ]; then
    :
  else
    missing+=("$pkg")
  fi
done
# With AppArmor on in the kernel but no apparmor_parser, dockerd cannot load
# its docker-default profile and every `docker run` fails: bring the parser.
if [ "$(cat /sys/module/apparmor/parameters/enabled 2>/dev/null)" = Y ] \
   && ! command -v apparmor_parser >/dev/null 2>&1; then
  missing+=(apparmor)
fi
if [ ${#missing[@]} -eq 0 ]; then
  echo "all present: docker.io skopeo umoci crun docker-registry busybox-static openssl chromium apache2-utils"
elif [ "${HOIST_TEST_NO_APT:-}" = 1 ]; then
  die "missing packages ${missing[*]} and HOIST_TEST_NO_APT=1"
else
  echo "installing: ${missing[*]}"
  # Keep the packages' own services (system dockerd, containerd, registry on
  # :5000) from starting: this script starts exactly what it needs.
  policy_created=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    policy_created=1
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  export DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1
  apt_opts=(-o DPkg::Lock::Timeout=600 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
  apt-get "${apt_opts[@]}" update -qq
  apt-get "${apt_opts[@]}" install -y -qq --no-install-recommends "${missing[@]}" </dev/null
  if [ $policy_created = 1 ]; then rm -f /usr/sbin/policy-rc.d; trap - EXIT; fi
  for pkg in "${missing[@]}"; do
    [ -n "${PKG_FILE[$pkg]:-}" ] || continue
    [ -x "${PKG_FILE[$pkg]}" ] || die "$pkg installed but ${PKG_FILE[$pkg]} is missing"
  done
fi

# ---------------------------------------------------------------- s3 server
# The S3 storage tests need a real S3 server: s3s-fs from crates.io, built
# once into target/ (rebuildable; 0.14.1 is the newest that this rustc builds).
# A debug build: it only moves the tests' few MiB, and builds in a fraction of
# the release build's time.
section "s3s-fs"
S3S_FS_VERSION=0.14.1
S3S_FS_ROOT="$ROOT_DIR/target/s3s-fs"
if [ -x "$S3S_FS_ROOT/bin/s3s-fs" ] && "$S3S_FS_ROOT/bin/s3s-fs" --version 2>/dev/null | grep -q "$S3S_FS_VERSION"; then
  echo "present: $("$S3S_FS_ROOT/bin/s3s-fs" --version)"
else
  T_S3=$(date +%s.%N)
  cargo install --locked --debug s3s-fs --version "$S3S_FS_VERSION" --features binary --root "$S3S_FS_ROOT"
  echo "installed in $(elapsed "$T_S3") s"
fi
export HOIST_TEST_S3S_FS="$S3S_FS_ROOT/bin/s3s-fs"

# ---------------------------------------------------------------- conformance
# The OCI distribution-spec conformance suite, built offline from
# scripts/conformance (Go from Debian's packages, apt-installed when missing);
# crates/hoist/tests/conformance.rs runs it against `hoist serve`.
section "OCI conformance suite"
T_CONF=$(date +%s.%N)
CONFORMANCE_OUT="$ROOT_DIR/target/conformance"
if [ "${HOIST_TEST_NO_APT:-}" = 1 ]; then
  # build.sh apt-installs what is missing: with apt off, check first.
  for p in golang-go $(sed -n '/^DEB_MODULES="/,/^"/p' scripts/conformance/build.sh | awk '$2 ~ /^golang-/ { print $2 }'); do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' \
      || die "the conformance suite needs the Debian package $p and HOIST_TEST_NO_APT=1"
  done
fi
bash scripts/conformance/build.sh "$CONFORMANCE_OUT" >"$ROOT_DIR/target/conformance-build.log" 2>&1 \
  || { tail -n 30 "$ROOT_DIR/target/conformance-build.log" >&2; die "building the conformance suite failed"; }
export HOIST_TEST_CONFORMANCE="$CONFORMANCE_OUT/bin/conformance.test"
echo "built $HOIST_TEST_CONFORMANCE in $(elapsed "$T_CONF") s"

# ---------------------------------------------------------------- dockerd
section "private dockerd"
T_DOCKERD=$(date +%s.%N)
# A short path: containerd's sockets live under --exec-root (108-byte limit).
TEST_TMP=$(mktemp -d /tmp/hoist-test.XXXXXX)
DOCKERD_PID=""

cleanup() {
  local rc=$?
  set +e
  if [ -n "$DOCKERD_PID" ] && kill -0 "$DOCKERD_PID" 2>/dev/null; then
    echo
    echo "==== stopping dockerd (pid $DOCKERD_PID) ===="
    kill -TERM "$DOCKERD_PID"
    for _ in $(seq 150); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$DOCKERD_PID" 2>/dev/null; then
      echo "dockerd did not stop in 15 s; killing it"
      kill -KILL "$DOCKERD_PID"
    fi
    wait "$DOCKERD_PID" 2>/dev/null
  fi
  if [ -n "${TEST_TMP:-}" ] && [ -d "$TEST_TMP" ]; then
    # Unmount whatever dockerd/containerd left under our dir, deepest first,
    # before deleting anything (never rm -rf through a live mount).
    awk -v p="$TEST_TMP/" 'index($5, p) == 1 { print $5 }' /proc/self/mountinfo \
      | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
    if [ "${HOIST_TEST_KEEP:-}" = 1 ]; then
      echo "kept $TEST_TMP (HOIST_TEST_KEEP=1)"
    elif awk -v p="$TEST_TMP/" 'index($5, p) == 1 { f = 1 } END { exit !f }' /proc/self/mountinfo; then
      echo "warning: mounts remain under $TEST_TMP; not deleting it" >&2
    else
      rm -rf "$TEST_TMP"
    fi
  fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

SOCK="$TEST_TMP/docker.sock"
mkdir -p "$TEST_TMP/bin"
echo '{}' > "$TEST_TMP/daemon.json" # ignore any /etc/docker/daemon.json
ns="hoist-test-$$"

start_dockerd() { # $1 = storage driver; returns 0 once the daemon answers
  local driver=$1
  # Fresh roots per attempt: a failed daemon may leave mounts behind (they
  # are unmounted by cleanup at exit).
  DOCKER_DATA="$TEST_TMP/data-$driver"
  mkdir -p "$DOCKER_DATA" "$TEST_TMP/exec-$driver"
  rm -f "$SOCK" "$TEST_TMP/docker.pid"
  : > "$TEST_TMP/dockerd.log"
  dockerd \
    --config-file "$TEST_TMP/daemon.json" \
    --data-root "$DOCKER_DATA" \
    --exec-root "$TEST_TMP/exec-$driver" \
    --pidfile "$TEST_TMP/docker.pid" \
    -H "unix://$SOCK" \
    --iptables=false --ip6tables=false --bridge=none \
    --containerd-namespace "$ns" --containerd-plugins-namespace "$ns-plugins" \
    --storage-driver "$driver" \
    >>"$TEST_TMP/dockerd.log" 2>&1 </dev/null &
  DOCKERD_PID=$!
  for _ in $(seq 300); do # 30 s
    if ! kill -0 "$DOCKERD_PID" 2>/dev/null; then
      wait "$DOCKERD_PID" 2>/dev/null
      DOCKERD_PID=""
      return 1
    fi
    if [ -S "$SOCK" ] && /usr/bin/docker -H "unix://$SOCK" version >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.1
  done
  kill -KILL "$DOCKERD_PID" 2>/dev/null; wait "$DOCKERD_PID" 2>/dev/null; DOCKERD_PID=""
  return 1
}

DRIVER=""
for d in ${HOIST_TEST_STORAGE_DRIVER:-overlay2 vfs}; do
  if start_dockerd "$d"; then
    actual=$(/usr/bin/docker -H "unix://$SOCK" info --format '{{.Driver}}' 2>/dev/null || true)
    if [ "$actual" = "$d" ]; then DRIVER=$d; break; fi
    echo "dockerd came up with storage driver '$actual' instead of '$d'; retrying"
    kill -TERM "$DOCKERD_PID"; wait "$DOCKERD_PID" 2>/dev/null; DOCKERD_PID=""
  else
    echo "dockerd with storage driver $d did not start:"
    { grep -E 'level=(error|fatal)|failed to start' "$TEST_TMP/dockerd.log" || tail -n 5 "$TEST_TMP/dockerd.log"; } \
      | tail -n 5 | sed 's/^/    /'
  fi
done
[ -n "$DRIVER" ] || { tail -n 30 "$TEST_TMP/dockerd.log" >&2; die "could not start dockerd (log above)"; }

export DOCKER_HOST="unix://$SOCK"
# Where the conformance test writes junit.xml, report.html and summary.txt.
export HOIST_TEST_CONFORMANCE_REPORT="$TEST_TMP/conformance"
export HOIST_TEST_DOCKER=1
export HOIST_TEST_DOCKER_DRIVER=$DRIVER

# The client: Debian's /usr/bin/docker matches the daemon (20.10); a newer
# client in /usr/local/bin may shadow it on PATH. Take the first that talks
# to this daemon, and put it first on PATH as `docker` for scripts and tests.
CLI=""
for c in /usr/bin/docker "$(command -v docker || true)"; do
  [ -n "$c" ] && [ -x "$c" ] || continue
  if "$c" version >/dev/null 2>&1; then CLI=$c; break; fi
done
[ -n "$CLI" ] || die "no docker client works with the daemon"
export HOIST_TEST_DOCKER_CLI=$CLI
ln -sf "$CLI" "$TEST_TMP/bin/docker"
export PATH="$TEST_TMP/bin:$PATH"
echo "dockerd pid $DOCKERD_PID, driver $DRIVER, socket $SOCK"
echo "client $CLI: $("$CLI" version --format 'client {{.Client.Version}} / server {{.Server.Version}} (API {{.Client.APIVersion}})')"
echo "dockerd up in $(elapsed "$T_DOCKERD") s"

# ---------------------------------------------------------------- images
section "test images"
T_IMAGES=$(date +%s.%N)
export HOIST_TEST_BASE_IMAGE=hoist-test/base:latest
export HOIST_TEST_APP_IMAGE=hoist-test/app:latest
export HOIST_TEST_APP_OUTPUT=hoist-test-ok

# A rootfs made of busybox-static, as a deterministic tarball.
rootfs="$TEST_TMP/rootfs"
mkdir -p "$rootfs"/{bin,etc,tmp,root,proc,sys,dev}
chmod 1777 "$rootfs/tmp"
cp /bin/busybox "$rootfs/bin/busybox"
applets=$(/bin/busybox --list)
for a in sh ash echo cat ls ln rm rmdir mkdir mv cp touch test [ true false env \
         printf sleep id pwd readlink stat head tail wc grep find sort uname \
         chmod chown sync sha256sum md5sum tar gzip du df mount hostname date; do
  if grep -qxF -- "$a" <<<"$applets"; then ln -s busybox "$rootfs/bin/$a"; fi
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$rootfs/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$rootfs/etc/group"
export HOIST_TEST_ROOTFS_TAR="$TEST_TMP/rootfs.tar"
tar -C "$rootfs" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
  -cf "$HOIST_TEST_ROOTFS_TAR" .
docker import \
  --change 'ENV PATH=/bin' --change 'CMD ["/bin/sh"]' \
  "$HOIST_TEST_ROOTFS_TAR" "$HOIST_TEST_BASE_IMAGE" >/dev/null

# The app: 3 layers (base + 2 RUN) with a whiteout, an opaque directory, a
# symlink and a hardlink. Its CMD checks that the layers were stacked right
# and prints the known line only then.
ctx="$TEST_TMP/app-ctx"
mkdir -p "$ctx"
cat > "$ctx/Dockerfile" <<'EOF'
FROM hoist-test/base:latest
RUN mkdir -p /data/old && echo gone > /data/gone && echo keep > /data/keep && echo old > /data/old/f
RUN rm /data/gone && rm -rf /data/old && mkdir /data/old && echo new > /data/old/g \
 && ln -s keep /data/link && ln /data/keep /data/hard
CMD ["/bin/sh", "-c", "test ! -e /data/gone && test ! -e /data/old/f && test \"$(cat /data/old/g)\" = new && test \"$(readlink /data/link)\" = keep && test \"$(cat /data/hard)\" = keep && echo hoist-test-ok || { echo hoist-test-broken-layers >&2; exit 1; }"]
EOF
DOCKER_BUILDKIT=0 docker build -q --network none -t "$HOIST_TEST_APP_IMAGE" "$ctx" >/dev/null 2>"$TEST_TMP/build.err" \
  || { cat "$TEST_TMP/build.err" >&2; die "docker build of $HOIST_TEST_APP_IMAGE failed"; }

nlayers=$(docker image inspect --format '{{len .RootFS.Layers}}' "$HOIST_TEST_APP_IMAGE")
[ "$nlayers" -ge 3 ] || die "$HOIST_TEST_APP_IMAGE has $nlayers layers, expected >= 3"
out=$(docker run --rm --network none "$HOIST_TEST_APP_IMAGE" 2>&1) \
  || die "docker run --rm $HOIST_TEST_APP_IMAGE failed: $out (see $TEST_TMP/dockerd.log)"
[ "$out" = "$HOIST_TEST_APP_OUTPUT" ] || die "docker run printed '$out', expected '$HOIST_TEST_APP_OUTPUT'"
echo "$HOIST_TEST_BASE_IMAGE $(docker image inspect --format '{{.Id}}' "$HOIST_TEST_BASE_IMAGE")"
echo "$HOIST_TEST_APP_IMAGE  $(docker image inspect --format '{{.Id}}' "$HOIST_TEST_APP_IMAGE") ($nlayers layers)"
echo "docker run --rm $HOIST_TEST_APP_IMAGE -> $out"
echo "images built and checked in $(elapsed "$T_IMAGES") s"

# The conformance counts, when its test ran (it fails on any failed spec or
# a skip its settings do not explain).
conformance_summary() {
  if [ -f "$HOIST_TEST_CONFORMANCE_REPORT/summary.txt" ]; then
    cat "$HOIST_TEST_CONFORMANCE_REPORT/summary.txt"
  fi
}

# ---------------------------------------------------------------- cargo
if [ "${1:-}" = "--exec" ]; then
  shift
  [ $# -gt 0 ] || die "--exec needs a command"
  section "$*"
  set +e
  "$@"
  status=$?
  set -e
  section "done"
  conformance_summary
  echo "exit status $status; total $(elapsed "$T0") s"
  exit $status
fi

# ---------------------------------------------------------------- unused deps
# Dependencies a crate declares but never uses: cargo-machete from crates.io
# (`cargo udeps` needs a nightly toolchain), built once into target/. Any
# finding fails the run, after the tests have run. A false positive goes
# under `[package.metadata.cargo-machete] ignored` in that crate, with why.
section "unused dependencies (cargo machete)"
MACHETE_VERSION=0.9.2
MACHETE_ROOT="$ROOT_DIR/target/cargo-machete"
if [ -x "$MACHETE_ROOT/bin/cargo-machete" ] && "$MACHETE_ROOT/bin/cargo-machete" --version 2>/dev/null | grep -qx "$MACHETE_VERSION"; then
  echo "present: cargo-machete $MACHETE_VERSION"
else
  cargo install --locked cargo-machete --version "$MACHETE_VERSION" --root "$MACHETE_ROOT"
fi
MACHETE_STATUS=0
"$MACHETE_ROOT/bin/cargo-machete" "$ROOT_DIR" || MACHETE_STATUS=$?

section "cargo build --workspace"
T_CARGO=$(date +%s.%N)
cargo build --workspace
echo "built in $(elapsed "$T_CARGO") s"

section "cargo test --workspace"
echo "env: DOCKER_HOST=$DOCKER_HOST HOIST_TEST_DOCKER=1 HOIST_TEST_DOCKER_CLI=$HOIST_TEST_DOCKER_CLI"
set +e
cargo test --workspace --no-fail-fast "$@"
status=$?
set -e

section "done"
conformance_summary
echo "cargo test exit status $status; total $(elapsed "$T0") s"
if [ "$MACHETE_STATUS" != 0 ]; then
  echo "scripts/test.sh: error: unused dependencies (see the cargo machete section): remove them from the crates' Cargo.toml" >&2
  [ "$status" != 0 ] || status=$MACHETE_STATUS
fi
exit $status
