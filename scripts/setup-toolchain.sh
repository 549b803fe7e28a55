#!/usr/bin/env bash
# Installs and wires up the toolchain Pagekeeper builds with, on a Debian
# bookworm machine that cannot download Rust toolchains (see docs/toolchain.md).
# Idempotent: when everything is in place it only checks and returns.
set -euo pipefail

PKGS=(rustc-web cargo-web rust-web-src rust-web-llvm lld-16 qemu-system-x86 ovmf)
# `setup-toolchain.sh --lint` also installs the formatter and linter (make lint).
if [ "${1:-}" = "--lint" ]; then
    PKGS+=(rustfmt-web rust-web-clippy)
fi
# With a display (make run GRAPHICS=1, or DISPLAY set), QEMU's window needs
# its GTK front end, packaged apart from qemu-system-x86.
if [ "${GRAPHICS:-auto}" = 1 ] || { [ "${GRAPHICS:-auto}" = auto ] && [ -n "${DISPLAY:-}" ]; }; then
    PKGS+=(qemu-system-gui)
fi
SYSROOT_BIN=/usr/lib/rustlib/x86_64-unknown-linux-gnu/bin

log() { echo "[setup] $*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

missing_packages() {
    local p
    for p in "${PKGS[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
    done
}

install_packages() {
    local missing
    missing=$(missing_packages)
    [ -z "$missing" ] && return 0
    log "installing Debian packages:" $missing
    as_root apt-get update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends $missing >/dev/null
}

# First file matching a glob, newest version first (llvm-objcopy-22, -19, ...).
newest() { ls -1 $1 2>/dev/null | sort -V | tail -n 1; }

link_tool() {
    local name=$1 target=$2
    [ -n "$target" ] && [ -x "$target" ] || { log "no target for $name"; exit 1; }
    if [ "$(readlink -f "$SYSROOT_BIN/$name" 2>/dev/null)" != "$(readlink -f "$target")" ]; then
        log "linking $SYSROOT_BIN/$name -> $target"
        as_root mkdir -p "$SYSROOT_BIN"
        as_root ln -sf "$target" "$SYSROOT_BIN/$name"
    fi
}

# The bootloader crate's build script expects the rustup `llvm-tools`
# component and a working `rust-lld`; Debian's sysroot has neither.
close_sysroot_holes() {
    link_tool llvm-objcopy "$(newest '/usr/bin/llvm-objcopy-*')"
    link_tool llvm-objdump "$(newest '/usr/bin/llvm-objdump-*')"
    link_tool rust-lld /usr/lib/llvm-16/bin/lld
}

check() {
    /usr/bin/rustc --version >/dev/null
    [ -d /usr/lib/rustlib/src/rust/library/core ] || { log "rust-src missing"; exit 1; }
    command -v qemu-system-x86_64 >/dev/null || { log "qemu missing"; exit 1; }
    [ -f /usr/share/OVMF/OVMF_CODE.fd ] || { log "OVMF missing"; exit 1; }
}

install_packages
close_sysroot_holes
check
