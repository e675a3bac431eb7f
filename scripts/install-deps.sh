#!/usr/bin/env bash
# Installs the host packages imgbake needs (Debian/Ubuntu), only those missing.
# Usage: scripts/install-deps.sh [--bench]
set -euo pipefail

pkgs=(
  qemu-system-x86   # the appliance VM
  qemu-utils        # qemu-img: formats, overlays, commit
  linux-image-cloud-amd64 # small kernel with ext4 built in; the appliance kernel
  debootstrap       # builds Debian test images
  e2fsprogs xfsprogs dosfstools fdisk util-linux # mkfs/fsck; sfdisk builds test images and verifies tables
  gdisk             # tests: sgdisk -v verifies a grown GPT independently of go-diskfs and util-linux
  busybox-static    # the appliance's rescue shell (imgbake fsck / shell --rescue); tests use it as an independent shell
  lvm2              # lvm in the appliance's rescue tools; testimages/build.sh makes debian-lvm.raw with it
  btrfs-progs       # btrfs in the appliance (subvolumes, check); test images verified with it on the host
  cryptsetup-bin    # tests: makes the LUKS test images' headers and checks them (luksDump, --test-passphrase)
  mdadm             # tests: checks the RAID test image's members (mdadm --examine)
  cpio
  mtools            # test images: files into the ESP without mounting
  tmux              # tests drive `imgbake shell` on a real terminal
  ansible-core openssh-client openssh-server # tests: the Ansible connection plugin, local and over ssh
  openssl           # tests: check password hashes independently of imgbake
  zsh lintian       # tests: the zsh completion loads; the .deb is lintian clean of errors
  gnupg             # tests: sign the local APT repository the repo step's test adds with its key
  dpkg-dev          # make deb: dpkg-shlibdeps (the libc dependency); tests: dpkg-scanpackages for the chroot's APT repository
)
if [[ "${1:-}" == "--bench" ]]; then
  pkgs+=(
    libguestfs-tools # the virt-customize side of the comparison
    ansible          # workload 8's chroot variant: community.general.chroot (ansible-core alone lacks it)
  )
fi

missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if ((${#missing[@]} == 0)); then
  echo "install-deps: all host packages present"
  exit 0
fi
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
