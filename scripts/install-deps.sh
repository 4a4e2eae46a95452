#!/usr/bin/env bash
# Installs every Debian 12 system package that rhcos-metal's tests, benchmarks and lab need.
# Idempotent: when everything is already installed it only checks and exits (about a second).
set -euo pipefail

PACKAGES=(
  # build
  pkg-config libvirt-dev gcc
  # fuzzing: cargo-afl builds AFL++ with make; scripts/fuzz.sh and a generator test run python3
  make python3
  # firmware and VMs for the lab
  qemu-system-x86 qemu-utils ipxe-qemu ipxe ovmf seabios linux-image-amd64 busybox-static cpio
  # Secure Boot lab: Microsoft-signed shim, Debian-signed network GRUB (the kernel above is signed),
  # grub-script-check for the GRUB configurations
  shim-signed grub-efi-amd64-signed grub-common
  # the lab's real installer: building coreos-installer (cargo install, cached outside the repo)
  libssl-dev libzstd-dev liblzma-dev
  # ... and what it runs with inside the lab's initramfs (copied from here with their libraries)
  bash util-linux udev gnupg kmod
  # the lab's CoreOS-shaped images (mkfs, xz) and the disk check (debugfs)
  e2fsprogs dosfstools mtools xz-utils fdisk gdisk
  # namespaces, bridges, captures
  iproute2 iptables tcpdump procps
  # libvirt peers and schema validation
  libvirt-daemon-system libvirt-clients libvirt-daemon-driver-qemu dnsmasq-base libxml2-utils
  # BMC peers
  openipmi ipmitool python3-venv
  # protocol clients used as real peers
  isc-dhcp-client tftp-hpa atftp curl openssl
  # a real browser for the status page test (headless: --dump-dom, --screenshot)
  chromium
  # the DHCPv6 relay peer (dhcrelay -6)
  isc-dhcp-relay
  # router advertisements read back as a host sees them (rdisc6)
  ndisc6
  # Ignition itself (ignition-validate, and the fetch stage for ignition-serve tests)
  ignition
  # baselines for the comparison benchmarks
  nginx-light tftpd-hpa kea-admin time
  # the shared state ([state] backend = "postgres"): a throwaway cluster per test; Kea for the
  # DHCPv4/DHCPv6 comparisons (memfile) and its PostgreSQL lease backend (kea-admin db-init pgsql)
  postgresql postgresql-client kea-dhcp4-server kea-dhcp6-server
  # DNS: dig and dnsperf (the server tests and the DNS comparison against dnsmasq)
  bind9-dnsutils dnsperf
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  # Never let a package start a host-wide service (dnsmasq, tftpd-hpa, nginx, libvirtd).
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  apt-get update -qq
  # A fresh machine once failed with "cannot access archive" mid-install; a second try fixed it.
  apt-get install -y -qq --no-install-recommends "${missing[@]}" ||
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Python peers (sushy-emulator) live in a venv owned by the project, outside the repo.
VENV="${RHCOS_METAL_VENV:-/opt/rhcos-metal-venv}"
if [ ! -x "$VENV/bin/sushy-emulator" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q sushy-tools
fi
