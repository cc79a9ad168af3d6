#!/usr/bin/env bash
# Install what the ground-truth boot recordings (tests/groundtruth/boot.py,
# recordings tests/data/groundtruth/linux-6.1-tcg.json and linux-6.12-tcg.json) need on a Debian
# bookworm machine:
#   - qemu-system-x86 (QEMU 7.2 in bookworm), installed with apt-get;
#   - Debian's own kernel images, one per series recorded:
#       linux-image-6.1.0-XX-amd64         (bookworm's own 6.1 kernel)
#       linux-image-6.12.NN+deb12-amd64    (the 6.12 kernel bookworm-security
#                                           carries for trixie's LTS backport)
#     fetched with `apt-get download` and unpacked (only ./boot of the kernel
#     package, which is what -kernel needs: neither kernel needs a module to
#     reach the initramfs under TCG) into $CPUSOLVE_GT_CACHE/kernel/;
#   - busybox-static, fetched and unpacked into $CPUSOLVE_GT_CACHE/busybox/.
# $CPUSOLVE_GT_CACHE defaults to /var/cache/cpusolve-groundtruth.
#
# Idempotent: work already done is skipped (a second run takes well under a
# second).  It never fails the build: if something cannot be installed or
# downloaded it prints a warning and exits 0; the slow tests then skip.
#
# The kernels tried first are the ones the recordings were made with
# (GT_KERNEL_PKGS below, one per series); if bookworm no longer serves one,
# the newest kernel of the same series is used instead (the reproducibility
# test then skips, saying to re-record).
set -u

GT_KERNEL_PKGS="${GT_KERNEL_PKGS:-linux-image-6.1.0-56-amd64 linux-image-6.12.117+deb12-amd64}"
CACHE="${CPUSOLVE_GT_CACHE:-/var/cache/cpusolve-groundtruth}"
APT_TIMEOUT="${GT_APT_TIMEOUT:-300}"

log() { echo "install-groundtruth: $*"; }
warn() { echo "install-groundtruth: WARNING: $*" >&2; }

SUDO=""
if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO="sudo -n"
    fi
fi

apt_updated=0
apt_update_once() {
    [ "$apt_updated" = 1 ] && return 0
    apt_updated=1
    log "apt-get update"
    timeout "$APT_TIMEOUT" $SUDO apt-get update -qq >/dev/null 2>&1 || warn "apt-get update failed"
}

# has_candidate PKG: apt knows a version of PKG to download
has_candidate() {
    apt-cache policy "$1" 2>/dev/null | grep -q 'Candidate: [^(]'
}

ensure_candidate() {
    has_candidate "$1" || { apt_update_once; has_candidate "$1"; }
}

# fetch_unpack PKG DESTROOT [TARPATTERN...]: apt-get download PKG and unpack it
# (restricted to TARPATTERN when given) into DESTROOT/PKG_VERSION/, writing
# DESTROOT/PKG_VERSION/PKG.version
fetch_unpack() {
    local pkg="$1" destroot="$2"
    shift 2
    local tmp deb ver dest
    tmp="$(mktemp -d)" || return 1
    chmod 755 "$tmp"
    if ! (cd "$tmp" && timeout "$APT_TIMEOUT" apt-get download -q -o APT::Sandbox::User=root "$pkg" >/dev/null 2>&1); then
        rm -rf "$tmp"
        return 1
    fi
    deb="$(ls "$tmp"/*.deb 2>/dev/null | head -n1)"
    [ -n "$deb" ] || { rm -rf "$tmp"; return 1; }
    ver="$(dpkg-deb -f "$deb" Version)"
    dest="$destroot/${pkg}_${ver//:/%3a}"
    rm -rf "$dest.partial"
    mkdir -p "$dest.partial"
    if [ "$#" -gt 0 ]; then
        # a dpkg -x of only the named members (a kernel package is ~400-500 MB unpacked)
        dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$dest.partial" --wildcards "$@" || { rm -rf "$tmp" "$dest.partial"; return 1; }
    else
        dpkg -x "$deb" "$dest.partial" || { rm -rf "$tmp" "$dest.partial"; return 1; }
    fi
    echo "$ver" >"$dest.partial/$pkg.version"
    rm -rf "$dest"
    mv "$dest.partial" "$dest"
    rm -rf "$tmp"
    log "unpacked $pkg $ver into $dest"
}

# fetch_retry PKG DESTROOT [TARPATTERN...]: fetch_unpack, and once more after an
# apt-get update when apt knew no version or the download failed (stale lists)
fetch_retry() {
    if has_candidate "$1" && fetch_unpack "$@"; then
        return 0
    fi
    [ "$apt_updated" = 1 ] && return 1
    apt_update_once
    has_candidate "$1" && fetch_unpack "$@"
}

install_qemu() {
    if command -v qemu-system-x86_64 >/dev/null 2>&1; then
        return 0
    fi
    if [ "$(id -u)" != 0 ] && [ -z "$SUDO" ]; then
        warn "qemu-system-x86_64 missing and not root: apt-get install qemu-system-x86"
        return 1
    fi
    ensure_candidate qemu-system-x86 || true
    log "apt-get install qemu-system-x86"
    if ! DEBIAN_FRONTEND=noninteractive timeout "$APT_TIMEOUT" $SUDO apt-get install -y -q --no-install-recommends qemu-system-x86 >/dev/null 2>&1; then
        apt_update_once
        DEBIAN_FRONTEND=noninteractive timeout "$APT_TIMEOUT" $SUDO apt-get install -y -q --no-install-recommends qemu-system-x86 >/dev/null 2>&1 \
            || { warn "could not install qemu-system-x86"; return 1; }
    fi
}

# series_regex PKG: the apt-cache search pattern for PKG's series, i.e. the
# kernels that may stand in for PKG when bookworm no longer serves it
series_regex() {
    case "$1" in
        linux-image-6.1.0-*-amd64) echo '^linux-image-6\.1\.0-[0-9]+-amd64$' ;;
        linux-image-6.12.*+deb12-amd64) echo '^linux-image-6\.12\.[0-9]+\+deb12-amd64$' ;;
        *) echo "^$(printf '%s' "$1" | sed 's/[.+]/\\&/g')\$" ;;
    esac
}

# install_kernel PKG: PKG's ./boot in the cache, or the newest of its series
install_kernel() {
    local pkg="$1"
    local release="${pkg#linux-image-}"
    if ls "$CACHE"/kernel/*/boot/vmlinuz-"$release" >/dev/null 2>&1; then
        return 0
    fi
    if fetch_retry "$pkg" "$CACHE/kernel" './boot/vmlinuz-*' './boot/config-*'; then
        return 0
    fi
    warn "$pkg not downloadable; trying the newest kernel of its series"
    apt_update_once
    local newest
    newest="$(apt-cache search --names-only "$(series_regex "$pkg")" 2>/dev/null | awk '{print $1}' | sort -V | tail -n1)"
    if [ -z "$newest" ]; then
        warn "no kernel of the series of $pkg known to apt (not Debian bookworm?)"
        return 1
    fi
    if ls "$CACHE"/kernel/*/boot/vmlinuz-"${newest#linux-image-}" >/dev/null 2>&1; then
        return 0
    fi
    fetch_unpack "$newest" "$CACHE/kernel" './boot/vmlinuz-*' './boot/config-*' || { warn "could not download $newest"; return 1; }
}

install_busybox() {
    if ls "$CACHE"/busybox/*/bin/busybox >/dev/null 2>&1; then
        return 0
    fi
    fetch_retry busybox-static "$CACHE/busybox" || { warn "could not download busybox-static"; return 1; }
}

main() {
    if ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg-deb >/dev/null 2>&1; then
        warn "not a Debian system (no apt-get/dpkg-deb); ground-truth boot tests will skip"
        return 0
    fi
    if ! mkdir -p "$CACHE" 2>/dev/null || [ ! -w "$CACHE" ]; then
        warn "cannot write $CACHE (set CPUSOLVE_GT_CACHE to a writable dir); ground-truth boot tests will skip"
        return 0
    fi
    local ok=1 pkg
    install_qemu || ok=0
    for pkg in $GT_KERNEL_PKGS; do
        install_kernel "$pkg" || ok=0
    done
    install_busybox || ok=0
    if [ "$ok" = 1 ]; then
        log "ready: $(ls "$CACHE"/kernel/*/boot/vmlinuz-* 2>/dev/null | tr '\n' ' ')$(ls "$CACHE"/busybox/*/bin/busybox 2>/dev/null | head -n1)"
    else
        warn "ground-truth boot requirements incomplete; the slow ground-truth tests will skip"
    fi
}

main "$@"
exit 0
