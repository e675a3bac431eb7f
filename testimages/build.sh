#!/usr/bin/env bash
# Builds the Debian 12 (bookworm) test images used by imgbake's tests.
#
# Usage: testimages/build.sh [NAME...]
#   NAME: rootfs | debian-gpt.qcow2 | debian-mbr-xfs.raw | debian-nopart.raw | debian-python.raw
#         | debian-lvm.raw | centos6-lvm.raw | debian-split.raw | debian-boot.qcow2
#         | fedora-btrfs.raw | opensuse-btrfs.raw | ubuntu-btrfs.raw
#         | debian-luks2.raw | debian-luks1.raw | debian-luks-lvm.raw | alpine.raw | flatcar-usr.raw
#         | rhel-lvm.raw | debian-raid1.raw | arch.raw
#         (the suffix may be omitted: debian-gpt, debian-mbr-xfs, debian-nopart, debian-python,
#         debian-lvm, centos6-lvm, debian-split, debian-boot, fedora-btrfs, opensuse-btrfs,
#         ubuntu-btrfs, debian-luks2, debian-luks1, debian-luks-lvm, alpine, flatcar-usr)
#   With no NAME every image except those in ON_DEMAND_IMAGES (below: the images of the
#   Ansible, LVM, layout, boot, btrfs and LUKS tests, built when a test asks) is built.
#   Images already in the cache are skipped.
#
# Cache: ${IMGBAKE_TESTIMAGES_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/imgbake/testimages}
# Needs root (debootstrap, device nodes, file ownership), debootstrap, e2fsprogs,
# xfsprogs, dosfstools, fdisk (sfdisk), qemu-utils, and go (protofile generator).
# mtools is optional (puts /EFI/BOOT/README.txt into the ESP). debian-python.raw
# built offline (the mirror unreachable) also needs dpkg-deb and a host running
# Debian 12 on the rootfs's architecture with python3 installed; debian-boot.qcow2
# likewise needs the host to have systemd-sysv, udev, dbus, openssh-server,
# linux-image-cloud-amd64 and initramfs-tools installed. debian-lvm.raw and
# centos6-lvm.raw also need lvm2 and a free loop device (losetup); they need no
# device-mapper. The *-btrfs.raw images need btrfs-progs, mount and a free loop
# device (the host kernel's btrfs).
#
# Every output is written under a temporary name and renamed into place, so an
# interrupted build never leaves a half-built image under its final name. A lock
# on the cache directory serializes concurrent builds (parallel go test runs).
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$SCRIPT_DIR/.." && pwd)
CACHE=${IMGBAKE_TESTIMAGES_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/imgbake/testimages}
MIRROR=${IMGBAKE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
ROOTFS_TAR=$CACHE/rootfs-$SUITE.tar
ALL_IMAGES=(debian-gpt.qcow2 debian-mbr-xfs.raw debian-nopart.raw)
# The images built only when asked for by name (see the usage above).
ON_DEMAND_IMAGES=(debian-python.raw debian-lvm.raw centos6-lvm.raw debian-split.raw debian-boot.qcow2
  fedora-btrfs.raw opensuse-btrfs.raw ubuntu-btrfs.raw debian-luks2.raw debian-luks1.raw debian-luks-lvm.raw)

# Fixed identifiers, so the images are reproducible and tests can know them.
GPT_DISK_GUID=5ea1b0d0-0000-4000-8000-000000000001
GPT_BIOS_PARTUUID=5ea1b0d0-0000-4000-8000-000000000011
GPT_ESP_PARTUUID=5ea1b0d0-0000-4000-8000-000000000012
GPT_ROOT_PARTUUID=5ea1b0d0-0000-4000-8000-000000000013
GPT_ROOT_UUID=5ea1b0d0-0000-4000-8000-0000000000a3
GPT_ESP_VOLID=5EA1E5B0 # blkid shows it as 5EA1-E5B0
MBR_DISK_ID=0x5ea1b0d1
XFS_UUID=5ea1b0d0-0000-4000-8000-0000000000b1
NOPART_UUID=5ea1b0d0-0000-4000-8000-0000000000c1
ARCH_UUID=5ea1b0d0-0000-4000-8000-0000000004c1
PYTHON_UUID=5ea1b0d0-0000-4000-8000-0000000000d1
BOOT_UUID=5ea1b0d0-0000-4000-8000-0000000000f1
BOOT_MACHINE_ID=5ea1b0d000004000800000000000f1f1 # as a machine that has booted has one
LVM_DISK_GUID=5ea1b0d0-0000-4000-8000-000000000002
LVM_BOOT_PARTUUID=5ea1b0d0-0000-4000-8000-000000000021
LVM_PV_PARTUUID=5ea1b0d0-0000-4000-8000-000000000022
LVM_BOOT_UUID=5ea1b0d0-0000-4000-8000-0000000000e1
LVM_ROOT_UUID=5ea1b0d0-0000-4000-8000-0000000000e2
LVM_DATA_UUID=5ea1b0d0-0000-4000-8000-0000000000e3
LVM_ALT_UUID=5ea1b0d0-0000-4000-8000-0000000000e4
LVM_SWAP_UUID=5ea1b0d0-0000-4000-8000-0000000000e5
LVM_PV_UUID=5ea1b0-0000-4000-8000-0000-0000-0000e6 # LVM's own 32-character form
CENTOS_DISK_ID=0x5ea1b0d2
CENTOS_BOOT_UUID=5ea1b0d0-0000-4000-8000-000000000c61
CENTOS_ROOT_UUID=5ea1b0d0-0000-4000-8000-000000000c62
CENTOS_SWAP_UUID=5ea1b0d0-0000-4000-8000-000000000c63
CENTOS_PV_UUID=5ea1c6-0000-4000-8000-0000-0000-0000c6
SPLIT_DISK_GUID=5ea1b0d0-0000-4000-8000-000000000004
SPLIT_PARTUUID=5ea1b0d0-0000-4000-8000-00000000004 # + the partition number
SPLIT_BOOT_UUID=5ea1b0d0-0000-4000-8000-0000000000f1
SPLIT_ESP_VOLID=5EA1E5B1 # blkid shows it as 5EA1-E5B1
SPLIT_ROOT_UUID=5ea1b0d0-0000-4000-8000-0000000000f3
SPLIT_USR_UUID=5ea1b0d0-0000-4000-8000-0000000000f4
SPLIT_VAR_UUID=5ea1b0d0-0000-4000-8000-0000000000f5
SPLIT_HOME_UUID=5ea1b0d0-0000-4000-8000-0000000000f6
SPLIT_SWAP_UUID=5ea1b0d0-0000-4000-8000-0000000000f7
SPLIT_SCRATCH_UUID=5ea1b0d0-0000-4000-8000-0000000000f8
SPLIT_BACKUP_UUID=5ea1b0d0-0000-4000-8000-0000000000f9 # named by the fstab, on no disk
FEDORA_DISK_GUID=5ea1b0d0-0000-4000-8000-000000000005
FEDORA_PARTUUID=5ea1b0d0-0000-4000-8000-00000000005 # + the partition number
FEDORA_BOOT_UUID=5ea1b0d0-0000-4000-8000-0000000001f1
FEDORA_BTRFS_UUID=5ea1b0d0-0000-4000-8000-0000000001f2
SUSE_DISK_GUID=5ea1b0d0-0000-4000-8000-000000000006
SUSE_PARTUUID=5ea1b0d0-0000-4000-8000-00000000006 # + the partition number
SUSE_BTRFS_UUID=5ea1b0d0-0000-4000-8000-0000000002f2
UBUNTU_DISK_ID=0x5ea1b0d3
UBUNTU_BTRFS_UUID=5ea1b0d0-0000-4000-8000-0000000003f2
LUKS_DISK_GUID=5ea1b0d0-0000-4000-8000-00000000000a
LUKS_BOOT_PARTUUID=5ea1b0d0-0000-4000-8000-0000000000a1
LUKS_CRYPT_PARTUUID=5ea1b0d0-0000-4000-8000-0000000000a2
LUKS_BOOT_UUID=5ea1b0d0-0000-4000-8000-000000000a51
LUKS_ROOT_UUID=5ea1b0d0-0000-4000-8000-000000000a52 # the filesystem inside
LUKS2_UUID=5ea1b0d0-0000-4000-8000-00000000a2a2     # the LUKS volumes
LUKS1_UUID=5ea1b0d0-0000-4000-8000-00000000a1a1
LUKS_LVM_UUID=5ea1b0d0-0000-4000-8000-00000000a3a3
LUKS_PV_UUID=5ea1a5-0000-4000-8000-0000-0000-0000a5
LUKS_SWAP_UUID=5ea1b0d0-0000-4000-8000-000000000a53
LUKS_HOME_UUID=5ea1b0d0-0000-4000-8000-000000000a54 # the filesystem in the LUKS LV
LUKS_HOME_LUKS_UUID=5ea1b0d0-0000-4000-8000-00000000a4a4
LUKS_PASSPHRASE="imgbake luks test passphrase" # what the tests open them with
# Fixed timestamp for mke2fs metadata (E2FSPROGS_FAKE_TIME) and the rootfs tar.
FAKE_TIME=1700000000

DISK_SIZE=1G

log() { printf 'build.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

need() {
  local c
  for c in "$@"; do
    command -v "$c" >/dev/null 2>&1 || die "missing tool: $c (run scripts/install-deps.sh)"
  done
}

# Temporary work directories, removed on exit whatever happens.
TMPDIRS=()
cleanup() {
  local d
  for d in "${TMPDIRS[@]}"; do
    [[ -n "$d" && -d "$d" ]] && rm -rf --one-file-system "$d"
  done
  return 0
}
trap cleanup EXIT
mktmp() { # mktmp VAR: a fresh temp dir inside the cache (same filesystem as the outputs)
  local d
  d=$(mktemp -d "$CACHE/.tmp.XXXXXX")
  TMPDIRS+=("$d")
  printf -v "$1" '%s' "$d"
}

# ---------------------------------------------------------------- rootfs

build_rootfs() {
  if [[ -f "$ROOTFS_TAR" ]]; then
    return 0
  fi
  need debootstrap tar
  local work start
  mktmp work
  start=$(date +%s)
  log "debootstrap --variant=minbase $SUITE from $MIRROR (takes a few minutes)"
  # Only what minbase has: apt, dpkg, coreutils, bash, dash (/bin/sh), util-linux...
  if ! debootstrap --variant=minbase --components=main "$SUITE" "$work/root" "$MIRROR" \
    >"$work/debootstrap.log" 2>&1; then
    tail -n 30 "$work/debootstrap.log" >&2 || true
    tail -n 30 "$work/root/debootstrap/debootstrap.log" >&2 2>/dev/null || true
    die "debootstrap failed"
  fi
  local r=$work/root
  echo testhost >"$r/etc/hostname"
  cat >"$r/etc/hosts" <<'EOF'
127.0.0.1	localhost
127.0.1.1	testhost
::1		localhost ip6-localhost ip6-loopback
EOF
  # Keep it small and free of host-specific state.
  rm -rf "$r"/var/lib/apt/lists/* "$r"/var/cache/apt/*.bin "$r"/var/cache/apt/archives/*.deb \
    "$r"/var/cache/apt/archives/partial/* "$r"/var/log/*.log "$r"/var/log/apt/* \
    "$r"/tmp/* "$r"/var/tmp/* "$r"/debootstrap
  if [[ -e "$r/etc/machine-id" ]]; then : >"$r/etc/machine-id"; fi
  rm -f "$r/var/lib/dbus/machine-id"
  if [[ -e "$r/etc/resolv.conf" ]]; then : >"$r/etc/resolv.conf"; fi
  [[ -x "$r/bin/sh" ]] || die "rootfs has no /bin/sh"
  grep -q 'VERSION_ID="12"' "$r/etc/os-release" || die "rootfs is not Debian 12"
  tar --numeric-owner --sort=name --xattrs --xattrs-include='*' \
    -C "$r" -cf "$work/rootfs.tar" .
  mv -f "$work/rootfs.tar" "$ROOTFS_TAR"
  log "rootfs: $(du -h --apparent-size "$ROOTFS_TAR" | cut -f1) in $(($(date +%s) - start))s"
}

# extract_rootfs DIR NAME: unpack the rootfs into DIR and add per-image files.
extract_rootfs() {
  local dir=$1 name=$2
  mkdir -p "$dir"
  tar --numeric-owner --xattrs --xattrs-include='*' -C "$dir" -xpf "$ROOTFS_TAR"
  echo "$name" >"$dir/etc/imgbake-testimage"
}

# ---------------------------------------------------------------- helpers

# part_field DISK N FIELD: start or size (in 512-byte sectors) of partition N.
part_field() {
  # sfdisk -d prints one line per partition: "DISK1 : start=2048, size=2048, type=..."
  sfdisk -d "$1" | awk -v dev="$1$2" -v f="$3" '
    $1 == dev && $2 == ":" {
      if (match($0, f "= *[0-9]+")) {
        s = substr($0, RSTART, RLENGTH); sub(/.*= */, "", s); print s; exit
      }
    }'
}

write_json() { # write_json FILE KEY=VALUE... (values that are all digits stay numbers)
  local file=$1
  shift
  local first=1 kv k v
  {
    printf '{'
    for kv in "$@"; do
      k=${kv%%=*}
      v=${kv#*=}
      ((first)) || printf ', '
      first=0
      if [[ "$v" =~ ^[0-9]+$ ]]; then
        printf '"%s": %s' "$k" "$v"
      else
        printf '"%s": "%s"' "$k" "$v"
      fi
    done
    printf '}\n'
  } >"$file"
}

# make_lvm DISK PV_START PV_SIZE PV_UUID VG NAME:SIZE...: an LVM PV on the
# partition of DISK at PV_START (PV_SIZE sectors) holding VG with the linear
# LVs NAME of SIZE, through a loop device that no other LVM command looks at
# (--devices). The LVM tools run with activation disabled: the LVs are
# created, never activated or zeroed, so no device-mapper is needed. Sets
# LV_OFF[NAME] and LV_SIZE[NAME], where each LV lies in DISK, in bytes (each
# LV is one contiguous segment; that is checked).
declare -A LV_OFF=() LV_SIZE=()
make_lvm() {
  local disk=$1 pv_start=$2 pv_size=$3 pv_uuid=$4 vg=$5
  shift 5
  local loopdev
  loopdev=$(losetup --find --show --offset $((pv_start * 512)) --sizelimit $((pv_size * 512)) "$disk") ||
    die "losetup failed (an LVM image needs a free loop device)"
  LVM_LOOP=$loopdev
  trap 'losetup -d "$LVM_LOOP" 2>/dev/null || true; cleanup' EXIT
  local lvmopts=(--devices "$loopdev" --config 'global { activation = 0 }')
  lvmq() { LVM_SUPPRESS_FD_WARNINGS=1 lvm "$@" 2> >(grep -v -e 'Activation disabled' -e 'not zeroed' >&2); }
  lvmq pvcreate -q "${lvmopts[@]}" --uuid "$pv_uuid" --norestorefile -y "$loopdev" >/dev/null
  lvmq vgcreate -q "${lvmopts[@]}" -s 4M "$vg" "$loopdev" >/dev/null
  local lv
  for lv in "$@"; do
    lvmq lvcreate -q "${lvmopts[@]}" -an -Zn -Wn -L "${lv#*:}" -n "${lv%%:*}" "$vg" >/dev/null
  done
  # Where each LV lies on the PV, in 512-byte sectors.
  local pe_start extent segs
  pe_start=$(lvmq pvs "${lvmopts[@]}" --noheadings --nosuffix --units s -o pe_start "$loopdev" | tr -d ' ')
  extent=$(lvmq vgs "${lvmopts[@]}" --noheadings --nosuffix --units s -o vg_extent_size "$vg" | tr -d ' ')
  segs=$(lvmq pvs "${lvmopts[@]}" --noheadings --segments -o lv_name,pvseg_start,pvseg_size "$loopdev")
  losetup -d "$loopdev"
  trap cleanup EXIT
  [[ "$pe_start" =~ ^[0-9]+$ && "$extent" =~ ^[0-9]+$ ]] || die "cannot read the PV layout (pe_start=$pe_start extent=$extent)"
  LV_OFF=() LV_SIZE=()
  local s n
  while read -r lv s n; do
    [[ -n "$lv" && -n "$n" ]] || continue # free space has no LV name
    [[ -z "${LV_OFF[$lv]:-}" ]] || die "LV $lv has more than one segment"
    LV_OFF[$lv]=$(((pv_start + pe_start + s * extent) * 512))
    LV_SIZE[$lv]=$((n * extent * 512))
  done <<<"$segs"
  for lv in "$@"; do
    [[ -n "${LV_OFF[${lv%%:*}]:-}" ]] || die "LV ${lv%%:*} not found in: $segs"
  done
}

# ---------------------------------------------------------------- images

build_gpt() {
  local name=debian-gpt.qcow2 out=$CACHE/debian-gpt.qcow2
  need sfdisk mkfs.ext4 mkfs.vfat qemu-img
  local work start
  mktmp work
  start=$(date +%s)
  log "building $name"
  local disk=$work/disk.raw
  truncate -s "$DISK_SIZE" "$disk"
  sfdisk -q "$disk" >/dev/null <<EOF
label: gpt
label-id: $GPT_DISK_GUID
unit: sectors
first-lba: 2048
start=2048, size=2048, type=21686148-6449-6E6F-744E-656564454649, uuid=$GPT_BIOS_PARTUUID, name="bios"
start=4096, size=131072, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, uuid=$GPT_ESP_PARTUUID, name="ESP"
start=135168, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=$GPT_ROOT_PARTUUID, name="rootfs"
EOF
  local esp_start esp_size root_start root_size
  esp_start=$(part_field "$disk" 2 start)
  esp_size=$(part_field "$disk" 2 size)
  root_start=$(part_field "$disk" 3 start)
  root_size=$(part_field "$disk" 3 size)
  [[ -n "$esp_start" && -n "$root_start" && -n "$root_size" ]] || die "cannot read partition table"

  local root=$work/root
  extract_rootfs "$root" "$name"
  local esp_uuid=${GPT_ESP_VOLID:0:4}-${GPT_ESP_VOLID:4:4}
  mkdir -p "$root/boot/efi"
  cat >"$root/etc/fstab" <<EOF
# /etc/fstab: static file system information (imgbake test image $name)
UUID=$GPT_ROOT_UUID	/	ext4	errors=remount-ro	0	1
UUID=$esp_uuid	/boot/efi	vfat	umask=0077	0	1
EOF

  # ESP: made in a separate file and copied into place.
  local esp=$work/esp.vfat
  truncate -s $((esp_size * 512)) "$esp"
  mkfs.vfat -F 32 -s 1 --invariant -i "$GPT_ESP_VOLID" -n ESP "$esp" >/dev/null
  if command -v mmd >/dev/null 2>&1 && command -v mcopy >/dev/null 2>&1; then
    printf 'imgbake test image %s: EFI system partition\n' "$name" >"$work/README.txt"
    MTOOLS_SKIP_CHECK=1 mmd -i "$esp" ::/EFI ::/EFI/BOOT
    MTOOLS_SKIP_CHECK=1 mcopy -i "$esp" -m "$work/README.txt" ::/EFI/BOOT/README.txt
  fi
  dd if="$esp" of="$disk" bs=1M seek=$((esp_start * 512)) oflag=seek_bytes conv=notrunc,sparse status=none
  rm -f "$esp"

  # Root: ext4 made directly inside the disk file at the partition's offset.
  E2FSPROGS_FAKE_TIME=$FAKE_TIME mkfs.ext4 -q -F -L rootfs -U "$GPT_ROOT_UUID" \
    -E "offset=$((root_start * 512)),hash_seed=$GPT_ROOT_UUID" \
    -d "$root" "$disk" "$((root_size / 2))k"
  rm -rf --one-file-system "$root"

  qemu-img convert -f raw -O qcow2 "$disk" "$work/out.qcow2"
  rm -f "$disk"
  write_json "$work/out.json" root_uuid="$GPT_ROOT_UUID" esp_uuid="$esp_uuid" \
    root_partition=3 esp_partition=2 fstype=ext4 label=rootfs format=qcow2 \
    partition_table=gpt disk_guid="$GPT_DISK_GUID" root_partuuid="$GPT_ROOT_PARTUUID" \
    hostname=testhost
  mv -f "$work/out.json" "$out.json"
  mv -f "$work/out.qcow2" "$out"
  log "$name: done in $(($(date +%s) - start))s"
}

build_mbr_xfs() {
  local name=debian-mbr-xfs.raw out=$CACHE/debian-mbr-xfs.raw
  need sfdisk mkfs.xfs xfs_db go
  local work start
  mktmp work
  start=$(date +%s)
  log "building $name"
  local disk=$work/disk.raw
  truncate -s "$DISK_SIZE" "$disk"
  sfdisk -q "$disk" >/dev/null <<EOF
label: dos
label-id: $MBR_DISK_ID
unit: sectors
start=2048, type=83
EOF
  local root_start root_size
  root_start=$(part_field "$disk" 1 start)
  root_size=$(part_field "$disk" 1 size)
  [[ -n "$root_start" && -n "$root_size" ]] || die "cannot read partition table"

  local root=$work/root
  extract_rootfs "$root" "$name"
  cat >"$root/etc/fstab" <<EOF
# /etc/fstab: static file system information (imgbake test image $name)
LABEL=xfsroot	/	xfs	defaults	0	1
EOF

  # mkfs.xfs cannot write at an offset and we have no loop devices: make the
  # filesystem in its own file from a protofile, then copy it into the partition.
  (cd "$REPO_DIR" && go build -o "$work/protogen" ./testimages/protogen)
  "$work/protogen" -fixups "$work/fixups" "$root" >"$work/proto"
  local fs=$work/root.xfs
  truncate -s $((root_size * 512)) "$fs"
  mkfs.xfs -q -f -L xfsroot -m uuid="$XFS_UUID" -p "$work/proto" "$fs"
  # The protofile cannot express the sticky bit, and mkfs.xfs applies setgid
  # directory inheritance: set the exact modes and owners with xfs_db.
  if [[ -s "$work/fixups" ]]; then
    local p mode uid gid args=()
    while IFS=$'\t' read -r p mode uid gid; do
      args+=(-c "path $p" -c "write core.mode 0$mode" -c "write core.uid $uid" -c "write core.gid $gid")
    done <"$work/fixups"
    xfs_db -x "${args[@]}" "$fs" >/dev/null
  fi
  rm -rf --one-file-system "$root"
  xfs_repair -n "$fs" >/dev/null 2>&1 || die "xfs_repair -n found problems in the new filesystem"
  dd if="$fs" of="$disk" bs=1M seek=$((root_start * 512)) oflag=seek_bytes conv=notrunc,sparse status=none
  rm -f "$fs"
  write_json "$work/out.json" label=xfsroot root_uuid="$XFS_UUID" root_partition=1 fstype=xfs \
    format=raw partition_table=dos disk_id="$MBR_DISK_ID" hostname=testhost
  mv -f "$work/out.json" "$out.json"
  mv -f "$disk" "$out"
  log "$name: done in $(($(date +%s) - start))s"
}

build_nopart() {
  local name=debian-nopart.raw
  need mkfs.ext4
  local work start
  mktmp work
  start=$(date +%s)
  log "building $name"
  local root=$work/root
  extract_rootfs "$root" "$name"
  cat >"$root/etc/fstab" <<EOF
# /etc/fstab: static file system information (imgbake test image $name)
UUID=$NOPART_UUID	/	ext4	errors=remount-ro	0	1
EOF
  bare_ext4_image "$work" "$root" "$name" "$NOPART_UUID" rootfs "$start" hostname=testhost
}

# bare_ext4_image WORK ROOT NAME UUID LABEL START [KEY=VALUE...]: the
# image NAME as one ext4 filesystem of ROOT (no partition table, DISK_SIZE),
# its sidecar JSON with KEY=VALUE added, both moved into the cache; ROOT
# is removed.
bare_ext4_image() {
  local work=$1 root=$2 name=$3 uuid=$4 label=$5 start=$6
  shift 6
  local disk=$work/disk.raw out=$CACHE/$name
  truncate -s "$DISK_SIZE" "$disk"
  E2FSPROGS_FAKE_TIME=$FAKE_TIME mkfs.ext4 -q -F -L "$label" -U "$uuid" -E "hash_seed=$uuid" -d "$root" "$disk"
  rm -rf --one-file-system "$root"
  write_json "$work/out.json" root_uuid="$uuid" root_partition=0 fstype=ext4 label="$label" \
    format=raw partition_table=none "$@"
  mv -f "$work/out.json" "$out.json"
  mv -f "$disk" "$out"
  log "$name: done in $(($(date +%s) - start))s"
}

# arch.raw: debian-nopart.raw's layout (a bare ext4 filesystem) as Arch
# Linux keeps its system: Arch's os-release, an empty /etc/arch-release,
# pacman's configuration and a local database (ALPM_DB_VERSION 9, one
# package entry) on the Debian rootfs, with no pacman binary (Debian's
# pacman-package-manager is not needed to build it).
ON_DEMAND_IMAGES+=(arch.raw)
build_arch() {
  local name=arch.raw
  need mkfs.ext4
  local work start
  mktmp work
  start=$(date +%s)
  log "building $name"
  local root=$work/root
  [[ -n "$work" && "$root" == "$CACHE"/.tmp.*/root ]] || die "unexpected work directory $root"
  extract_rootfs "$root" "$name"
  set_os_release "$root" arch <<'EOF'
NAME="Arch Linux"
PRETTY_NAME="Arch Linux"
ID=arch
BUILD_ID=rolling
ANSI_COLOR="38;2;23;147;209"
HOME_URL="https://archlinux.org/"
DOCUMENTATION_URL="https://wiki.archlinux.org/"
LOGO=archlinux-logo
EOF
  : >"$root/etc/arch-release"
  echo archhost >"$root/etc/hostname"
  cat >"$root/etc/pacman.conf" <<'EOF'
#
# /etc/pacman.conf (as Arch installs it, shortened; imgbake test image)
#
[options]
HoldPkg     = pacman glibc
Architecture = auto
CheckSpace
SigLevel    = Required DatabaseOptional
LocalFileSigLevel = Optional

[core]
Include = /etc/pacman.d/mirrorlist

[extra]
Include = /etc/pacman.d/mirrorlist
EOF
  mkdir -p "$root/etc/pacman.d" "$root/var/lib/pacman/local/filesystem-2024.11.21-1" "$root/var/lib/pacman/sync"
  echo 'Server = https://mirror.example/archlinux/$repo/os/$arch' >"$root/etc/pacman.d/mirrorlist"
  echo 9 >"$root/var/lib/pacman/local/ALPM_DB_VERSION"
  printf '%%NAME%%\nfilesystem\n\n%%VERSION%%\n2024.11.21-1\n\n%%ARCH%%\nany\n\n' \
    >"$root/var/lib/pacman/local/filesystem-2024.11.21-1/desc"
  cat >"$root/etc/fstab" <<EOF
# Static information about the filesystems. (imgbake test image $name)
UUID=$ARCH_UUID	/	ext4	rw,relatime	0	1
EOF
  bare_ext4_image "$work" "$root" "$name" "$ARCH_UUID" archroot "$start" hostname=archhost \
    os_note="the Debian 12 rootfs with Arch's os-release, arch-release, pacman.conf and a pacman database: no pacman"
}

# in_chroot ROOT COMMAND...: COMMAND chrooted into ROOT with a clean
# environment. Nothing is mounted: apt and dpkg need no /proc or /dev here.
in_chroot() {
  local root=$1
  shift
  chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive "$@"
}

# install_host_packages WORK ROOT PACKAGE...: the host's installed PACKAGEs,
# and what they need that ROOT lacks, rebuilt as .debs from the host's dpkg
# database (testimages/hostdebs, which writes only inside its own empty
# directory under WORK and checks that the host runs ROOT's release and
# architecture), then installed with dpkg -i chrooted into ROOT, batch by
# batch, dependencies first. For building offline.
install_host_packages() {
  local work=$1 root=$2
  shift 2
  need go dpkg-deb dpkg-query
  [[ -d "$root/tmp" && ! -L "$root/tmp" ]] || die "$root/tmp is not a directory"
  local tool=$work/hostdebs repack=$work/hostdebs.d debs=$root/tmp/imgbake-hostdebs
  (cd "$REPO_DIR" && go build -o "$tool" ./testimages/hostdebs)
  mkdir "$repack"
  local batches
  batches=$("$tool" -root "$root" -work "$repack" "$@") || die "rebuilding the host's packages failed (see above)"
  if [[ -z "$batches" ]]; then
    log "the rootfs has $* already"
    return 0
  fi
  mkdir "$debs"
  mv "$repack"/debs/*.deb "$debs"/
  local batch f files
  while read -r batch; do
    files=()
    for f in $batch; do files+=("/tmp/imgbake-hostdebs/$f"); done
    if ! in_chroot "$root" dpkg -i "${files[@]}" >>"$work/dpkg.log" 2>&1; then
      tail -n 30 "$work/dpkg.log" >&2
      die "dpkg -i $batch in the rootfs failed"
    fi
  done <<<"$batches"
  rm -rf --one-file-system "$debs"
}

# debian-python.raw: debian-nopart.raw's layout (a bare ext4 filesystem) plus
# python3, which Ansible needs on its targets. python3 is installed with apt in
# a chroot of the extracted rootfs: no VM, no second debootstrap. When the
# mirror cannot be reached (the tests must build their images offline too),
# the host's own python3 packages are installed instead (install_host_packages).
build_python() {
  local name=debian-python.raw out=$CACHE/debian-python.raw
  need mkfs.ext4 chroot
  local work start
  mktmp work
  start=$(date +%s)
  log "building $name"
  local root=$work/root
  extract_rootfs "$root" "$name"
  # rm first: cp would write through a symlink there, outside the root.
  rm -f "$root/etc/resolv.conf"
  cp -L /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || : >"$root/etc/resolv.conf"
  # --error-on=any: an unreachable mirror fails the update (by default only a warning).
  if in_chroot "$root" apt-get -qq --error-on=any update >"$work/apt.log" 2>&1; then
    log "$name: python3 from the Debian mirror (apt-get install in a chroot)"
    if ! in_chroot "$root" apt-get -y -qq --no-install-recommends install python3 >>"$work/apt.log" 2>&1; then
      tail -n 30 "$work/apt.log" >&2
      die "installing python3 into the rootfs failed"
    fi
  else
    log "$name: the Debian mirror cannot be reached: $(grep -m1 -E '^(E|W|Err):' "$work/apt.log" || tail -n 1 "$work/apt.log")"
    log "$name: python3 from the host's own installed packages instead (rebuilt as .debs, dpkg -i in a chroot)"
    install_host_packages "$work" "$root" python3
  fi
  [[ -x "$root/usr/bin/python3" ]] || die "python3 is missing after the install"
  : >"$root/etc/resolv.conf"
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
    "$root"/var/log/*.log "$root"/var/log/apt/* "$root"/tmp/* "$root"/var/tmp/*
  cat >"$root/etc/fstab" <<EOF
# /etc/fstab: static file system information (imgbake test image $name)
UUID=$PYTHON_UUID	/	ext4	errors=remount-ro	0	1
EOF
  local disk=$work/disk.raw
  truncate -s "$DISK_SIZE" "$disk"
  E2FSPROGS_FAKE_TIME=$FAKE_TIME mkfs.ext4 -q -F -L rootfs -U "$PYTHON_UUID" \
    -E "hash_seed=$PYTHON_UUID" -d "$root" "$disk"
  rm -rf --one-file-system "$root"
  write_json "$work/out.json" root_uuid="$PYTHON_UUID" root_partition=0 fstype=ext4 label=rootfs \
    format=raw partition_table=none hostname=testhost
  mv -f "$work/out.json" "$out.json"
  mv -f "$disk" "$out"
  log "$name: done in $(($(date +%s) - start))s"
}

# debian-boot.qcow2: a Debian that really boots, for the tests that boot what
# imgbake made. No bootloader: QEMU boots it directly with its own
# /boot/vmlinuz-* and /boot/initrd.img-* (read out of the image) and
# root=UUID=$BOOT_UUID console=ttyS0. debian-nopart.raw's layout (a bare ext4
# filesystem) in a 2 GiB sparse qcow2, plus systemd as init, udev, dbus,
# openssh-server (enabled, with the host keys its postinst made), the cloud
# kernel with an initramfs for a virtio disk, systemd-networkd doing DHCP on
# en*, and the fixed machine-id $BOOT_MACHINE_ID. Root keeps the rootfs's "*"
# password: no password login, ssh keys only.
#
# The packages always come from the host (install_host_packages), mirror or
# not: the tests must build their images without a network, and this way the
# image is the same whichever way it was built. Nothing is mounted in the
# chroot: without /proc and /run/systemd the maintainer scripts see no
# running systemd and only enable units, and policy-rc.d keeps invoke-rc.d
# from starting anything.
build_boot() {
  local name=debian-boot.qcow2 out=$CACHE/debian-boot.qcow2
  need mkfs.ext4 chroot qemu-img lsinitramfs
  local work start
  mktmp work
  start=$(date +%s)
  log "building $name"
  local root=$work/root
  extract_rootfs "$root" "$name"
  [[ -d "$root/usr/sbin" && ! -L "$root/usr/sbin" ]] || die "$root/usr/sbin is not a directory"
  rm -f "$root/usr/sbin/policy-rc.d"
  printf '#!/bin/sh\n# imgbake build.sh: start no services while building the image.\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
  chmod 755 "$root/usr/sbin/policy-rc.d"
  # The initramfs gets only the modules a virtio disk needs (ext4 is built
  # into the cloud kernel): MODULES=most would put most of the kernel's
  # modules in, a slower boot under TCG. conf.d and hooks are no package's
  # conffiles, so writing them before the install asks dpkg nothing.
  mkdir -p "$root/etc/initramfs-tools/conf.d" "$root/etc/initramfs-tools/hooks"
  echo 'MODULES=list' >"$root/etc/initramfs-tools/conf.d/imgbake-testimage.conf"
  cat >"$root/etc/initramfs-tools/hooks/imgbake-virtio" <<'EOF'
#!/bin/sh
# imgbake test image: the modules for a root on a virtio disk.
[ "$1" = prereqs ] && exit 0
. /usr/share/initramfs-tools/hook-functions
manual_add_modules virtio_pci virtio_blk
EOF
  chmod 755 "$root/etc/initramfs-tools/hooks/imgbake-virtio"
  log "$name: systemd, udev, dbus, openssh-server and the kernel from the host's own installed packages (rebuilt as .debs, dpkg -i in a chroot)"
  install_host_packages "$work" "$root" systemd-sysv udev dbus openssh-server initramfs-tools linux-image-cloud-amd64

  local kernel initrd kver
  kernel=$(cd "$root" && ls boot/vmlinuz-* 2>/dev/null | head -n 1)
  [[ -n "$kernel" ]] || die "no /boot/vmlinuz-* after installing the kernel"
  kver=${kernel#boot/vmlinuz-}
  initrd=boot/initrd.img-$kver
  if [[ ! -f "$root/$initrd" ]]; then
    # The kernel's postinst makes it through /etc/kernel/postinst.d; make it
    # here if that was skipped.
    in_chroot "$root" update-initramfs -c -k "$kver" >>"$work/dpkg.log" 2>&1 ||
      { tail -n 30 "$work/dpkg.log" >&2; die "update-initramfs -c -k $kver failed"; }
  fi
  # Listed into a file: grep -q quitting early would fail lsinitramfs under pipefail.
  lsinitramfs "$root/$initrd" >"$work/initrd.list" || die "lsinitramfs $initrd failed"
  local mod
  for mod in virtio_blk virtio_pci; do
    grep -q "/$mod\.ko" "$work/initrd.list" || die "$initrd has no $mod module"
  done
  [[ -x "$root/usr/sbin/sshd" && -L "$root/usr/sbin/init" ]] ||
    die "sshd or systemd's /sbin/init is missing after the install"

  mkdir -p "$root/etc/systemd/network"
  cat >"$root/etc/systemd/network/20-wired.network" <<'EOF'
# imgbake test image: DHCP on every Ethernet interface (QEMU's user network).
[Match]
Name=en*

[Network]
DHCP=yes
EOF
  # openssh-server's postinst named its host keys after the build host
  # (uname -n is not the chroot's): after the image instead.
  local hostkey
  for hostkey in "$root"/etc/ssh/ssh_host_*_key; do
    in_chroot "$root" ssh-keygen -q -c -C root@testhost -P '' -f "/etc/ssh/${hostkey##*/}" >/dev/null ||
      die "renaming the comment of ${hostkey##*/} failed"
  done
  # systemd's postinst made a random machine-id: a fixed one instead, so the
  # image is reproducible and tests can tell it from one a clone made.
  rm -f "$root/etc/machine-id"
  echo "$BOOT_MACHINE_ID" >"$root/etc/machine-id"
  in_chroot "$root" systemctl enable systemd-networkd.service ssh.service >>"$work/dpkg.log" 2>&1 ||
    { tail -n 30 "$work/dpkg.log" >&2; die "systemctl enable systemd-networkd ssh in the chroot failed"; }
  cat >"$root/etc/fstab" <<EOF
# /etc/fstab: static file system information (imgbake test image $name)
UUID=$BOOT_UUID	/	ext4	errors=remount-ro	0	1
EOF
  rm -f "$root/usr/sbin/policy-rc.d"
  # rm first: a symlink there would make the redirection write outside the root.
  rm -f "$root/etc/resolv.conf"
  : >"$root/etc/resolv.conf"
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
    "$root"/var/log/*.log "$root"/var/log/apt/* "$root"/tmp/* "$root"/var/tmp/*

  local disk=$work/disk.raw
  truncate -s 2G "$disk"
  E2FSPROGS_FAKE_TIME=$FAKE_TIME mkfs.ext4 -q -F -L rootfs -U "$BOOT_UUID" \
    -E "hash_seed=$BOOT_UUID" -d "$root" "$disk"
  rm -rf --one-file-system "$root"
  qemu-img convert -f raw -O qcow2 "$disk" "$work/out.qcow2"
  rm -f "$disk"
  write_json "$work/out.json" root_uuid="$BOOT_UUID" root_partition=0 fstype=ext4 label=rootfs \
    format=qcow2 partition_table=none hostname=testhost kernel="/$kernel" initrd="/$initrd" machine_id="$BOOT_MACHINE_ID"
  mv -f "$work/out.json" "$out.json"
  mv -f "$work/out.qcow2" "$out"
  log "$name: done in $(($(date +%s) - start))s"
}

# debian-lvm.raw: root on LVM (scenario 5 of the broken-disk suite), and a
# second operating system for multi-boot inspection. GPT: /boot ext4 (1) and
# an LVM PV (2) holding VG vg0 with LVs root (ext4, the Debian rootfs), swap,
# data (ext4, mounted at /srv) and alt (ext4 holding only another OS's
# os-release and hostname). fstab names root as /dev/mapper/vg0-root, data as
# /dev/vg0/data, /boot by UUID.
#
# The host needs no device-mapper for this: the PV partition is put on a loop
# device, the LVM tools run with activation disabled (LVs are created, never
# activated or zeroed), and every LV's filesystem is written into the disk
# file at the offset LVM allocated to it (each LV is one contiguous segment;
# the build checks that).
build_lvm() {
  local name=debian-lvm.raw out=$CACHE/debian-lvm.raw
  need sfdisk mkfs.ext4 mkswap losetup lvm
  local work start
  mktmp work
  start=$(date +%s)
  log "building $name"
  local disk=$work/disk.raw
  truncate -s "$DISK_SIZE" "$disk"
  sfdisk -q "$disk" >/dev/null <<EOF
label: gpt
label-id: $LVM_DISK_GUID
unit: sectors
first-lba: 2048
start=2048, size=65536, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=$LVM_BOOT_PARTUUID, name="boot"
start=67584, type=E6D6D379-F507-44C2-A23C-238F2A3DF928, uuid=$LVM_PV_PARTUUID, name="lvm"
EOF
  local boot_start boot_size pv_start pv_size
  boot_start=$(part_field "$disk" 1 start)
  boot_size=$(part_field "$disk" 1 size)
  pv_start=$(part_field "$disk" 2 start)
  pv_size=$(part_field "$disk" 2 size)
  [[ -n "$boot_start" && -n "$boot_size" && -n "$pv_start" && -n "$pv_size" ]] || die "cannot read partition table"

  make_lvm "$disk" "$pv_start" "$pv_size" "$LVM_PV_UUID" vg0 root:900M swap:8M data:16M alt:8M

  local root=$work/root
  extract_rootfs "$root" "$name"
  mkdir -p "$root/srv"
  cat >"$root/etc/fstab" <<EOF
# /etc/fstab: static file system information (imgbake test image $name)
/dev/mapper/vg0-root	/	ext4	errors=remount-ro	0	1
UUID=$LVM_BOOT_UUID	/boot	ext4	defaults	0	2
/dev/vg0/data	/srv	ext4	defaults	0	2
/dev/mapper/vg0-swap	none	swap	sw	0	0
EOF
  E2FSPROGS_FAKE_TIME=$FAKE_TIME mkfs.ext4 -q -F -L root -U "$LVM_ROOT_UUID" \
    -E "offset=${LV_OFF[root]},hash_seed=$LVM_ROOT_UUID" \
    -d "$root" "$disk" "$((LV_SIZE[root] / 1024))k"
  rm -rf --one-file-system "$root"

  local boot=$work/boot data=$work/data alt=$work/alt
  mkdir -p "$boot" "$data" "$alt/etc"
  echo "imgbake test image $name: /boot" >"$boot/README"
  echo "imgbake test image $name: LV vg0/data" >"$data/marker"
  cat >"$alt/etc/os-release" <<'EOF'
NAME="Imgbake Alt OS"
ID=imgbake-alt
VERSION_ID="1.0"
PRETTY_NAME="Imgbake Alt OS 1.0"
EOF
  echo althost >"$alt/etc/hostname"
  E2FSPROGS_FAKE_TIME=$FAKE_TIME mkfs.ext4 -q -F -L boot -U "$LVM_BOOT_UUID" \
    -E "offset=$((boot_start * 512)),hash_seed=$LVM_BOOT_UUID" -d "$boot" "$disk" "$((boot_size / 2))k"
  E2FSPROGS_FAKE_TIME=$FAKE_TIME mkfs.ext4 -q -F -L data -U "$LVM_DATA_UUID" \
    -E "offset=${LV_OFF[data]},hash_seed=$LVM_DATA_UUID" -d "$data" "$disk" "$((LV_SIZE[data] / 1024))k"
  E2FSPROGS_FAKE_TIME=$FAKE_TIME mkfs.ext4 -q -F -L alt -U "$LVM_ALT_UUID" \
    -E "offset=${LV_OFF[alt]},hash_seed=$LVM_ALT_UUID" -d "$alt" "$disk" "$((LV_SIZE[alt] / 1024))k"
  local swap=$work/swap
  truncate -s "${LV_SIZE[swap]}" "$swap"
  mkswap -q -L swap -U "$LVM_SWAP_UUID" "$swap" >/dev/null
  dd if="$swap" of="$disk" bs=1M seek="${LV_OFF[swap]}" oflag=seek_bytes conv=notrunc,sparse status=none
  rm -f "$swap"

  write_json "$work/out.json" format=raw partition_table=gpt disk_guid="$LVM_DISK_GUID" \
    root_partition=0 root_offset="${LV_OFF[root]}" fstype=ext4 label=root root_uuid="$LVM_ROOT_UUID" \
    hostname=testhost vg=vg0 pv_partition=2 boot_partition=1 boot_uuid="$LVM_BOOT_UUID" \
    data_offset="${LV_OFF[data]}" alt_offset="${LV_OFF[alt]}" root_size="${LV_SIZE[root]}" \
    swap_size="${LV_SIZE[swap]}" data_size="${LV_SIZE[data]}" alt_size="${LV_SIZE[alt]}"
  mv -f "$work/out.json" "$out.json"
  mv -f "$disk" "$out"
  log "$name: done in $(($(date +%s) - start))s"
}

# centos6-lvm.raw: an OS without os-release, as admins still have to repair
# (CentOS/RHEL 6 style), on the Debian rootfs: os-release and debian_version
# removed; /etc/centos-release "CentOS release 6.10 (Final)" with
# redhat-release and system-release symlinks to it, as CentOS 6 has them; the
# host name in /etc/sysconfig/network (no /etc/hostname); an rpm database.
# Anaconda's default layout: MBR, /boot ext4 (1) and an LVM PV (2) with VG
# vg_centos6, LVs lv_root (ext4) and lv_swap; fstab names them by
# /dev/mapper path and /boot by UUID.
build_centos6() {
  local name=centos6-lvm.raw out=$CACHE/centos6-lvm.raw
  need sfdisk mkfs.ext4 mkswap losetup lvm
  local work start
  mktmp work
  start=$(date +%s)
  log "building $name"
  local disk=$work/disk.raw
  truncate -s 512M "$disk"
  sfdisk -q "$disk" >/dev/null <<PARTITIONS
label: dos
label-id: $CENTOS_DISK_ID
unit: sectors
start=2048, size=65536, type=83, bootable
start=67584, type=8e
PARTITIONS
  local boot_start boot_size pv_start pv_size
  boot_start=$(part_field "$disk" 1 start)
  boot_size=$(part_field "$disk" 1 size)
  pv_start=$(part_field "$disk" 2 start)
  pv_size=$(part_field "$disk" 2 size)
  [[ -n "$boot_start" && -n "$boot_size" && -n "$pv_start" && -n "$pv_size" ]] || die "cannot read partition table"
  make_lvm "$disk" "$pv_start" "$pv_size" "$CENTOS_PV_UUID" vg_centos6 lv_root:400M lv_swap:8M

  local root=$work/root
  [[ -n "$work" && "$root" == "$CACHE"/.tmp.*/root ]] || die "unexpected work directory $root"
  extract_rootfs "$root" "$name"
  rm -f "$root/etc/os-release" "$root/usr/lib/os-release" "$root/etc/debian_version" "$root/etc/hostname"
  echo "CentOS release 6.10 (Final)" >"$root/etc/centos-release"
  ln -s centos-release "$root/etc/redhat-release"
  ln -s centos-release "$root/etc/system-release"
  mkdir -p "$root/etc/sysconfig" "$root/var/lib/rpm"
  printf 'NETWORKING=yes\nHOSTNAME=centos6.localdomain\n' >"$root/etc/sysconfig/network"
  # The header of a Berkeley DB hash file, as rpm 4.8's Packages starts
  # (magic 0x061561, version 9, 4 KiB pages): a database rpm would find no
  # package in, which is all inspection looks for.
  printf '\0\0\0\0\0\0\0\0\0\0\0\0\x61\x15\x06\0\x09\0\0\0\0\x10\0\0' >"$root/var/lib/rpm/Packages"
  truncate -s 16K "$root/var/lib/rpm/Packages"
  cat >"$root/etc/fstab" <<FSTAB
#
# /etc/fstab (imgbake test image $name, as anaconda writes it on CentOS 6)
#
/dev/mapper/vg_centos6-lv_root /                       ext4    defaults        1 1
UUID=$CENTOS_BOOT_UUID /boot                   ext4    defaults        1 2
/dev/mapper/vg_centos6-lv_swap swap                    swap    defaults        0 0
tmpfs                   /dev/shm                tmpfs   defaults        0 0
devpts                  /dev/pts                devpts  gid=5,mode=620  0 0
sysfs                   /sys                    sysfs   defaults        0 0
proc                    /proc                   proc    defaults        0 0
FSTAB
  E2FSPROGS_FAKE_TIME=$FAKE_TIME mkfs.ext4 -q -F -U "$CENTOS_ROOT_UUID" \
    -E "offset=${LV_OFF[lv_root]},hash_seed=$CENTOS_ROOT_UUID" \
    -d "$root" "$disk" "$((LV_SIZE[lv_root] / 1024))k"
  rm -rf --one-file-system "$root"

  local boot=$work/boot
  mkdir -p "$boot/grub"
  echo "imgbake test image $name: /boot" >"$boot/README"
  : >"$boot/vmlinuz-2.6.32-754.el6.x86_64"
  E2FSPROGS_FAKE_TIME=$FAKE_TIME mkfs.ext4 -q -F -U "$CENTOS_BOOT_UUID" \
    -E "offset=$((boot_start * 512)),hash_seed=$CENTOS_BOOT_UUID" -d "$boot" "$disk" "$((boot_size / 2))k"
  local swap=$work/swap
  truncate -s "${LV_SIZE[lv_swap]}" "$swap"
  mkswap -q -U "$CENTOS_SWAP_UUID" "$swap" >/dev/null
  dd if="$swap" of="$disk" bs=1M seek="${LV_OFF[lv_swap]}" oflag=seek_bytes conv=notrunc,sparse status=none
  rm -f "$swap"

  write_json "$work/out.json" format=raw partition_table=dos disk_id="$CENTOS_DISK_ID" \
    root_partition=0 root_offset="${LV_OFF[lv_root]}" root_size="${LV_SIZE[lv_root]}" fstype=ext4 \
    root_uuid="$CENTOS_ROOT_UUID" hostname=centos6.localdomain vg=vg_centos6 pv_partition=2 \
    boot_partition=1 boot_uuid="$CENTOS_BOOT_UUID" swap_size="${LV_SIZE[lv_swap]}"
  mv -f "$work/out.json" "$out.json"
  mv -f "$disk" "$out"
  log "$name: done in $(($(date +%s) - start))s"
}

# debian-split.raw: a root assembled from many filesystems. GPT: /boot ext4
# (1), an ESP vfat at /boot/efi (2), the root ext4 (3), /usr (4), /var (5),
# /home (6), swap (7) and a scratch ext4 (8) that fstab marks noauto. The
# root holds /etc but nothing that names the OS, as on Flatcar and some
# hardened layouts: /etc/os-release is Debian's symlink to
# ../usr/lib/os-release, which is on the /usr filesystem, and debian_version
# is removed. fstab names filesystems by UUID and LABEL, lists /boot/efi
# before /boot and a bind mount (/home/shared on /srv/shared) before the
# /home it comes from, and has a nofail entry for a filesystem on no disk.
build_split() {
  local name=debian-split.raw out=$CACHE/debian-split.raw
  need sfdisk mkfs.ext4 mkfs.vfat mkswap
  local work start
  mktmp work
  start=$(date +%s)
  log "building $name"
  local disk=$work/disk.raw
  truncate -s 600M "$disk"
  local linux=0FC63DAF-8483-4772-8E79-3D69D8477DE4
  sfdisk -q "$disk" >/dev/null <<PARTITIONS
label: gpt
label-id: $SPLIT_DISK_GUID
first-lba: 2048
size=32MiB, type=$linux, uuid=${SPLIT_PARTUUID}1, name="boot"
size=16MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, uuid=${SPLIT_PARTUUID}2, name="ESP"
size=48MiB, type=$linux, uuid=${SPLIT_PARTUUID}3, name="root"
size=320MiB, type=$linux, uuid=${SPLIT_PARTUUID}4, name="usr"
size=64MiB, type=$linux, uuid=${SPLIT_PARTUUID}5, name="var"
size=16MiB, type=$linux, uuid=${SPLIT_PARTUUID}6, name="home"
size=8MiB, type=0657FD6D-A4AB-43C4-84E5-0933C84B4F4F, uuid=${SPLIT_PARTUUID}7, name="swap"
size=8MiB, type=$linux, uuid=${SPLIT_PARTUUID}8, name="scratch"
PARTITIONS
  local n part_start=() part_size=()
  for n in 1 2 3 4 5 6 7 8; do
    part_start[n]=$(part_field "$disk" "$n" start)
    part_size[n]=$(part_field "$disk" "$n" size)
    [[ -n "${part_start[n]}" && -n "${part_size[n]}" ]] || die "cannot read partition $n of the partition table"
  done

  local root=$work/root trees=$work/trees
  [[ -n "$work" && "$root" == "$CACHE"/.tmp.*/root && "$trees" == "$CACHE"/.tmp.*/trees ]] ||
    die "unexpected work directories $root $trees"
  extract_rootfs "$root" "$name"
  mkdir -p "$trees"
  local d
  for d in boot usr var home; do
    mv "$root/$d" "$trees/$d"
    mkdir -m 0755 "$root/$d"
  done
  rm -f "$root/etc/debian_version"
  mkdir -p "$trees/boot/efi" "$trees/home/shared" "$trees/scratch" "$root/srv/shared" "$root/mnt/scratch" "$root/mnt/backup"
  echo "imgbake test image $name: /boot" >"$trees/boot/README"
  echo "imgbake test image $name: /home/shared, bound on /srv/shared" >"$trees/home/shared/README"
  echo "imgbake test image $name: LABEL=scratch (noauto)" >"$trees/scratch/README"
  local esp_uuid=${SPLIT_ESP_VOLID:0:4}-${SPLIT_ESP_VOLID:4:4}
  cat >"$root/etc/fstab" <<FSTAB
# /etc/fstab: static file system information (imgbake test image $name)
UUID=$SPLIT_ROOT_UUID	/	ext4	errors=remount-ro	0	1
# listed before /boot on purpose: it is mounted after it all the same
UUID=$esp_uuid	/boot/efi	vfat	umask=0077	0	2
LABEL=boot	/boot	ext4	defaults	0	2
UUID=$SPLIT_USR_UUID	/usr	ext4	defaults	0	2
LABEL=var	/var	ext4	defaults	0	2
# a bind mount listed before the filesystem its source is on
/home/shared	/srv/shared	none	bind	0	0
UUID=$SPLIT_HOME_UUID	/home	ext4	defaults,nodev	0	2
UUID=$SPLIT_SWAP_UUID	none	swap	sw	0	0
LABEL=scratch	/mnt/scratch	ext4	noauto	0	2
UUID=$SPLIT_BACKUP_UUID	/mnt/backup	ext4	nofail	0	2
tmpfs	/tmp	tmpfs	defaults	0	0
FSTAB

  # mkext4 PART LABEL UUID DIR: an ext4 filesystem of DIR in partition PART.
  mkext4() {
    E2FSPROGS_FAKE_TIME=$FAKE_TIME mkfs.ext4 -q -F -L "$2" -U "$3" \
      -E "offset=$((part_start[$1] * 512)),hash_seed=$3" -d "$4" "$disk" "$((part_size[$1] / 2))k"
  }
  mkext4 1 boot "$SPLIT_BOOT_UUID" "$trees/boot"
  mkext4 3 root "$SPLIT_ROOT_UUID" "$root"
  mkext4 4 usr "$SPLIT_USR_UUID" "$trees/usr"
  mkext4 5 var "$SPLIT_VAR_UUID" "$trees/var"
  mkext4 6 home "$SPLIT_HOME_UUID" "$trees/home"
  mkext4 8 scratch "$SPLIT_SCRATCH_UUID" "$trees/scratch"
  rm -rf --one-file-system "$root" "$trees"

  local esp=$work/esp.vfat swap=$work/swap
  truncate -s $((part_size[2] * 512)) "$esp"
  mkfs.vfat -F 16 --invariant -i "$SPLIT_ESP_VOLID" -n ESP "$esp" >/dev/null
  dd if="$esp" of="$disk" bs=1M seek=$((part_start[2] * 512)) oflag=seek_bytes conv=notrunc,sparse status=none
  truncate -s $((part_size[7] * 512)) "$swap"
  mkswap -q -U "$SPLIT_SWAP_UUID" "$swap" >/dev/null
  dd if="$swap" of="$disk" bs=1M seek=$((part_start[7] * 512)) oflag=seek_bytes conv=notrunc,sparse status=none
  rm -f "$esp" "$swap"

  write_json "$work/out.json" format=raw partition_table=gpt disk_guid="$SPLIT_DISK_GUID" \
    root_partition=3 fstype=ext4 label=root root_uuid="$SPLIT_ROOT_UUID" hostname=testhost \
    boot_partition=1 boot_uuid="$SPLIT_BOOT_UUID" esp_partition=2 esp_uuid="$esp_uuid" \
    usr_partition=4 var_partition=5 home_partition=6 swap_partition=7 scratch_partition=8 \
    missing_uuid="$SPLIT_BACKUP_UUID"
  mv -f "$work/out.json" "$out.json"
  mv -f "$disk" "$out"
  log "$name: done in $(($(date +%s) - start))s"
}

# ---------------------------------------------------------------- btrfs images
#
# The btrfs layouts of Fedora, openSUSE and Ubuntu, on the Debian rootfs with
# the distribution's os-release. mkfs.btrfs 6.2 cannot make subvolumes and
# cannot write at an offset: the filesystem is made in its own file, filled
# through a loop device mounted on the host (the host kernel has btrfs),
# checked with the host's btrfs-progs (check --readonly, subvolume list,
# get-default, dump-super) and copied into its partition. Fixed: the
# filesystem UUID, the disk and partition identifiers, the subvolume ids
# (created in order) and the files; not fixed: btrfs's own timestamps,
# generations and device UUID (mkfs.btrfs 6.2 cannot set them).

# btrfs_mount FS MNT: loop-mount the btrfs filesystem in file FS on MNT
# (compressing what is written), undone by btrfs_unmount or on exit.
BTRFS_LOOP='' BTRFS_MNT=''
btrfs_mount() {
  local fs=$1 mnt=$2
  [[ "$mnt" == "$CACHE"/.tmp.*/* ]] || die "unexpected mount point $mnt"
  mkdir -p "$mnt"
  BTRFS_LOOP=$(losetup --find --show "$fs") || die "losetup failed (a btrfs image needs a free loop device)"
  trap 'btrfs_unmount; cleanup' EXIT
  BTRFS_MNT=$mnt
  mount -t btrfs -o compress=zstd "$BTRFS_LOOP" "$mnt" || die "mount $fs on $mnt failed"
  # Detaching a mounted loop device makes the kernel free it at unmount
  # (autoclear): even a killed build leaves none behind once main() has
  # unmounted its leftovers.
  losetup -d "$BTRFS_LOOP"
  BTRFS_LOOP=''
}
btrfs_unmount() {
  if [[ -n "$BTRFS_MNT" ]]; then
    umount "$BTRFS_MNT" 2>/dev/null || umount -l "$BTRFS_MNT" || true
    BTRFS_MNT=''
  fi
  if [[ -n "$BTRFS_LOOP" ]]; then
    losetup -d "$BTRFS_LOOP" 2>/dev/null || true
    BTRFS_LOOP=''
  fi
  trap cleanup EXIT
}

# set_os_release ROOT NAME: the os-release of another distribution replaces
# Debian's (/usr/lib/os-release, which /etc/os-release links to), read from
# stdin; debian_version goes unless NAME is ubuntu (Ubuntu keeps one).
set_os_release() {
  local root=$1 name=$2
  [[ -L "$root/etc/os-release" ]] || die "$root/etc/os-release is not Debian's symlink"
  cat >"$root/usr/lib/os-release"
  [[ "$name" == ubuntu ]] || rm -f "$root/etc/debian_version"
}

# build_btrfs NAME LAYOUT: one of the btrfs images (LAYOUT fedora, opensuse
# or ubuntu; see the constants in testimages.go for what each holds).
build_btrfs() {
  local name=$1 layout=$2 out=$CACHE/$1
  need sfdisk mkfs.btrfs btrfs losetup mount mkfs.ext4
  local work start
  mktmp work
  start=$(date +%s)
  log "building $name"
  local disk=$work/disk.raw fsuuid disk_guid label
  truncate -s 800M "$disk"
  local bios=21686148-6449-6E6F-744E-656564454649 linux=0FC63DAF-8483-4772-8E79-3D69D8477DE4
  local root_part boot_part=0 table=gpt
  case "$layout" in
    fedora)
      fsuuid=$FEDORA_BTRFS_UUID disk_guid=$FEDORA_DISK_GUID label=fedora
      root_part=3 boot_part=2
      sfdisk -q "$disk" >/dev/null <<PARTITIONS
label: gpt
label-id: $disk_guid
first-lba: 2048
size=1MiB, type=$bios, uuid=${FEDORA_PARTUUID}1, name="bios"
size=32MiB, type=$linux, uuid=${FEDORA_PARTUUID}2, name="boot"
type=$linux, uuid=${FEDORA_PARTUUID}3, name="root"
PARTITIONS
      ;;
    opensuse)
      fsuuid=$SUSE_BTRFS_UUID disk_guid=$SUSE_DISK_GUID label=''
      root_part=2
      sfdisk -q "$disk" >/dev/null <<PARTITIONS
label: gpt
label-id: $disk_guid
first-lba: 2048
size=8MiB, type=$bios, uuid=${SUSE_PARTUUID}1, name="p.legacy"
type=$linux, uuid=${SUSE_PARTUUID}2, name="p.lxroot"
PARTITIONS
      ;;
    ubuntu)
      fsuuid=$UBUNTU_BTRFS_UUID disk_guid=$UBUNTU_DISK_ID label='' table=dos
      root_part=1
      sfdisk -q "$disk" >/dev/null <<PARTITIONS
label: dos
label-id: $disk_guid
unit: sectors
start=2048, type=83, bootable
PARTITIONS
      ;;
    *) die "unknown btrfs layout $layout" ;;
  esac
  local root_start root_size
  root_start=$(part_field "$disk" "$root_part" start)
  root_size=$(part_field "$disk" "$root_part" size)
  [[ -n "$root_start" && -n "$root_size" ]] || die "cannot read partition table"

  local fs=$work/root.btrfs mnt=$work/mnt
  truncate -s $((root_size * 512)) "$fs"
  # mkfs.btrfs 6.2 cannot fix the device UUID (dev_item): only the fsid is.
  mkfs.btrfs -q -f -U "$fsuuid" ${label:+-L "$label"} "$fs" >/dev/null
  btrfs_mount "$fs" "$mnt"
  # root: the subvolume holding the OS; the others as the installer makes them.
  local root home_dir default='' want_subvols
  case "$layout" in
    fedora)
      btrfs subvolume create "$mnt/root" >/dev/null
      btrfs subvolume create "$mnt/home" >/dev/null
      root=$mnt/root home_dir=$mnt/home want_subvols='root home'
      ;;
    opensuse)
      btrfs subvolume create "$mnt/@" >/dev/null
      btrfs subvolume create "$mnt/@/.snapshots" >/dev/null
      mkdir "$mnt/@/.snapshots/1"
      btrfs subvolume create "$mnt/@/.snapshots/1/snapshot" >/dev/null
      btrfs subvolume create "$mnt/@/home" >/dev/null
      btrfs subvolume create "$mnt/@/var" >/dev/null
      root=$mnt/@/.snapshots/1/snapshot home_dir=$mnt/@/home default=@/.snapshots/1/snapshot
      want_subvols='@ @/.snapshots @/.snapshots/1/snapshot @/home @/var'
      ;;
    ubuntu)
      btrfs subvolume create "$mnt/@" >/dev/null
      btrfs subvolume create "$mnt/@home" >/dev/null
      root=$mnt/@ home_dir=$mnt/@home want_subvols='@ @home'
      ;;
  esac
  extract_rootfs "$root" "$name"
  echo "imgbake test image $name: the home subvolume" >"$home_dir/README"
  local btrfs_opts boot_uuid=''
  case "$layout" in
    fedora)
      boot_uuid=$FEDORA_BOOT_UUID
      echo fedora-btrfs >"$root/etc/hostname"
      set_os_release "$root" fedora <<'EOF'
NAME="Fedora Linux"
VERSION="39 (Cloud Edition)"
ID=fedora
VERSION_ID=39
VERSION_CODENAME=""
PLATFORM_ID="platform:f39"
PRETTY_NAME="Fedora Linux 39 (Cloud Edition)"
VARIANT="Cloud Edition"
VARIANT_ID=cloud
EOF
      cat >"$root/etc/fstab" <<FSTAB
# /etc/fstab (imgbake test image $name, as Fedora Cloud has it)
UUID=$fsuuid / btrfs subvol=root,compress=zstd:1 0 0
UUID=$boot_uuid /boot ext4 defaults 1 2
UUID=$fsuuid /home btrfs subvol=home,compress=zstd:1 0 0
FSTAB
      ;;
    opensuse)
      echo opensuse-btrfs >"$root/etc/hostname"
      mkdir -p "$root/.snapshots"
      set_os_release "$root" opensuse <<'EOF'
NAME="openSUSE Leap"
VERSION="15.5"
ID="opensuse-leap"
ID_LIKE="suse opensuse"
VERSION_ID="15.5"
PRETTY_NAME="openSUSE Leap 15.5"
CPE_NAME="cpe:/o:opensuse:leap:15.5"
EOF
      # What /var held goes to its own subvolume, as on openSUSE.
      cp -a "$root/var/." "$mnt/@/var/"
      rm -rf --one-file-system "${root:?}/var"
      mkdir -m 0755 "$root/var"
      cat >"$root/etc/fstab" <<FSTAB
# /etc/fstab (imgbake test image $name, as openSUSE's installer writes it)
UUID=$fsuuid  /            btrfs  defaults               0  0
UUID=$fsuuid  /var         btrfs  subvol=/@/var          0  0
UUID=$fsuuid  /home        btrfs  subvol=/@/home         0  0
UUID=$fsuuid  /.snapshots  btrfs  subvol=/@/.snapshots   0  0
FSTAB
      ;;
    ubuntu)
      echo ubuntu-btrfs >"$root/etc/hostname"
      echo "bookworm/sid" >"$root/etc/debian_version"
      set_os_release "$root" ubuntu <<'EOF'
PRETTY_NAME="Ubuntu 22.04.4 LTS"
NAME="Ubuntu"
VERSION_ID="22.04"
VERSION="22.04.4 LTS (Jammy Jellyfish)"
VERSION_CODENAME=jammy
ID=ubuntu
ID_LIKE=debian
UBUNTU_CODENAME=jammy
EOF
      cat >"$root/etc/fstab" <<FSTAB
# /etc/fstab (imgbake test image $name, as Ubuntu's installer writes it)
# / was on /dev/vda1 during installation
UUID=$fsuuid /               btrfs   defaults,subvol=@ 0       1
# /home was on /dev/vda1 during installation
UUID=$fsuuid /home           btrfs   defaults,subvol=@home 0       2
FSTAB
      ;;
  esac
  if [[ -n "$default" ]]; then
    btrfs subvolume set-default "$mnt/$default" || die "btrfs subvolume set-default $default failed"
  fi
  # Checked with the host's btrfs-progs before the filesystem is closed.
  local got want
  got=$(btrfs subvolume list -a "$mnt" | awk '{ p = $NF; sub(/^<FS_TREE>\//, "", p); print p }' | sort | tr '\n' ' ')
  want=$(printf '%s\n' $want_subvols | sort | tr '\n' ' ')
  [[ "$got" == "$want" ]] || die "btrfs subvolume list: got $got, want $want"
  got=$(btrfs subvolume get-default "$mnt")
  if [[ -n "$default" ]]; then
    [[ "$got" == *" path $default" ]] || die "btrfs subvolume get-default: got $got, want $default"
  else
    [[ "$got" == "ID 5 (FS_TREE)" ]] || die "btrfs subvolume get-default: got $got, want the top level"
  fi
  local default_id
  default_id=$(btrfs subvolume get-default "$mnt" | awk '{ print $2 }')
  sync
  btrfs_unmount
  btrfs check --readonly "$fs" >"$work/check.log" 2>&1 || { cat "$work/check.log" >&2; die "btrfs check --readonly found problems"; }
  btrfs inspect-internal dump-super "$fs" | grep -q "^fsid[[:space:]]*$fsuuid\$" || die "dump-super: fsid is not $fsuuid"
  dd if="$fs" of="$disk" bs=1M seek=$((root_start * 512)) oflag=seek_bytes conv=notrunc,sparse status=none
  rm -f "$fs"

  if ((boot_part)); then
    local boot=$work/boot boot_start boot_size
    boot_start=$(part_field "$disk" "$boot_part" start)
    boot_size=$(part_field "$disk" "$boot_part" size)
    mkdir -p "$boot"
    echo "imgbake test image $name: /boot" >"$boot/README"
    E2FSPROGS_FAKE_TIME=$FAKE_TIME mkfs.ext4 -q -F -L boot -U "$boot_uuid" \
      -E "offset=$((boot_start * 512)),hash_seed=$boot_uuid" -d "$boot" "$disk" "$((boot_size / 2))k"
  fi
  local id_key=disk_guid
  [[ "$table" == dos ]] && id_key=disk_id
  write_json "$work/out.json" format=raw partition_table="$table" "$id_key=$disk_guid" \
    root_partition="$root_part" root_offset=$((root_start * 512)) root_size=$((root_size * 512)) \
    fstype=btrfs label="$label" root_uuid="$fsuuid" hostname="$layout-btrfs" \
    boot_partition="$boot_part" boot_uuid="$boot_uuid" default_subvolume="${default:-}" \
    default_subvolume_id="$default_id"
  mv -f "$work/out.json" "$out.json"
  mv -f "$disk" "$out"
  log "$name: done in $(($(date +%s) - start))s"
}

# luks_volume_key FILE PASSPHRASE_FILE: the volume key of the LUKS volume
# in FILE, hex, as cryptsetup reports it.
luks_volume_key() {
  local key
  key=$(cryptsetup luksDump -q --dump-volume-key --key-file "$2" "$1" |
    awk '/^MK dump:/ { f = 1; sub(/^MK dump:/, "") } f && /^[ \t]*([0-9a-f][0-9a-f] )+/ { gsub(/[ \t]/, ""); printf "%s", $0; next } f { f = 0 }')
  [[ ${#key} -eq 128 ]] || die "cannot read the volume key of $1 from cryptsetup luksDump (got ${#key} hex digits)"
  printf '%s' "$key"
}

# debian-luks2.raw, debian-luks1.raw, debian-luks-lvm.raw: a LUKS-encrypted
# root as Debian's installer makes it: GPT, /boot ext4 (1), a LUKS partition
# (2). luks2: LUKS2 (argon2id, tiny cost, 4096-byte encryption sectors as
# cryptsetup >= 2.4 picks for most disks), the root ext4 inside, fstab
# /dev/mapper/luks-UUID and a crypttab naming that mapping. luks1: LUKS1
# (PBKDF2-sha256), crypttab name sda2_crypt, fstab /dev/mapper/sda2_crypt.
# luks-lvm: LUKS2 (PBKDF2) holding an LVM PV, VG vgcrypt with LVs root,
# swap and home, fstab naming the root by its filesystem UUID; LV home is
# itself a LUKS1 volume (an encrypted /home on LVM, crypttab home_crypt
# /dev/vgcrypt/home, fstab /dev/mapper/home_crypt /home). The host has no
# device-mapper: cryptsetup formats the partition's header in a file, the
# filesystem (or PV) is made as a plain file and encrypted into the payload
# by testimages/xtsencrypt (aes-xts-plain64) with the
# volume key cryptsetup reports. Its holes stay holes (never-written
# sectors: the filesystem does not read them), so the image stays sparse.
build_luks() {
  local variant=$1 name out
  name=debian-$variant.raw
  out=$CACHE/$name
  need sfdisk mkfs.ext4 cryptsetup go
  [[ $variant != luks-lvm ]] || need losetup lvm mkswap
  local work start
  mktmp work
  [[ -n "$work" && -d "$work" ]] || die "no work directory"
  start=$(date +%s)
  log "building $name"
  local disk=$work/disk.raw
  truncate -s "$DISK_SIZE" "$disk"
  sfdisk -q "$disk" >/dev/null <<PARTS
label: gpt
label-id: $LUKS_DISK_GUID
unit: sectors
first-lba: 2048
start=2048, size=65536, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=$LUKS_BOOT_PARTUUID, name="boot"
start=67584, type=CA7D7CCB-63ED-4C53-861C-1742536059CC, uuid=$LUKS_CRYPT_PARTUUID, name="crypt"
PARTS
  local boot_start boot_size crypt_start crypt_size
  boot_start=$(part_field "$disk" 1 start)
  boot_size=$(part_field "$disk" 1 size)
  crypt_start=$(part_field "$disk" 2 start)
  crypt_size=$(part_field "$disk" 2 size)
  [[ -n "$boot_start" && -n "$boot_size" && -n "$crypt_start" && -n "$crypt_size" ]] || die "cannot read partition table"

  local luks_uuid format_opts=() version=2 mapper tabname sector=512
  case $variant in
    luks2)
      luks_uuid=$LUKS2_UUID
      sector=4096
      format_opts=(--type luks2 --pbkdf argon2id --pbkdf-memory 1024 --pbkdf-force-iterations 4 --pbkdf-parallel 1 --sector-size 4096)
      tabname=luks-$luks_uuid ;;
    luks1)
      luks_uuid=$LUKS1_UUID version=1
      format_opts=(--type luks1 --hash sha256 --pbkdf-force-iterations 1000)
      tabname=sda2_crypt ;;
    luks-lvm)
      luks_uuid=$LUKS_LVM_UUID
      format_opts=(--type luks2 --pbkdf pbkdf2 --hash sha256 --pbkdf-force-iterations 1000 --sector-size 512)
      tabname=sda2_crypt ;;
    *) die "unknown LUKS variant $variant" ;;
  esac
  mapper=luks-$luks_uuid
  # The LUKS header, made in a file of the partition's size (sparse) and
  # copied into place; the payload starts at 16 MiB.
  local payload_sectors=32768
  local crypt=$work/crypt.img pw=$work/passphrase
  printf '%s' "$LUKS_PASSPHRASE" >"$pw"
  truncate -s $((crypt_size * 512)) "$crypt"
  cryptsetup luksFormat -q "${format_opts[@]}" --cipher aes-xts-plain64 --key-size 512 \
    --offset "$payload_sectors" --uuid "$luks_uuid" --key-file "$pw" "$crypt"
  cryptsetup open --test-passphrase --key-file "$pw" "$crypt" || die "cryptsetup cannot open the volume it made"
  local vkey
  vkey=$(luks_volume_key "$crypt" "$pw")
  dd if="$crypt" of="$disk" bs=1M seek=$((crypt_start * 512)) count=$((payload_sectors * 512)) \
    iflag=count_bytes oflag=seek_bytes conv=notrunc,sparse status=none
  rm -f "$crypt"
  # The payload, a whole number of encryption sectors (dm-crypt maps no more).
  local payload_off=$(((crypt_start + payload_sectors) * 512)) payload_size=$(((crypt_size - payload_sectors) * 512 / sector * sector))

  local root=$work/root
  extract_rootfs "$root" "$name"
  printf '# <target name>\t<source device>\t<key file>\t<options>\n%s\tUUID=%s\tnone\tluks,discard\n' \
    "$tabname" "$luks_uuid" >"$root/etc/crypttab"
  [[ $variant != luks-lvm ]] || printf 'home_crypt\t/dev/vgcrypt/home\tnone\tluks\n' >>"$root/etc/crypttab"
  local rootspec=/dev/mapper/$tabname
  [[ $variant != luks-lvm ]] || rootspec=UUID=$LUKS_ROOT_UUID
  {
    printf '# /etc/fstab: static file system information (imgbake test image %s)\n' "$name"
    printf '%s\t/\text4\terrors=remount-ro\t0\t1\n' "$rootspec"
    printf 'UUID=%s\t/boot\text4\tdefaults\t0\t2\n' "$LUKS_BOOT_UUID"
    [[ $variant != luks-lvm ]] || printf '/dev/mapper/vgcrypt-swap\tnone\tswap\tsw\t0\t0\n/dev/mapper/home_crypt\t/home\text4\tdefaults\t0\t2\n'
  } >"$root/etc/fstab"

  # The plaintext of the payload.
  local plain=$work/plain.img root_off=0 root_size=$payload_size home_off= home_size= home_vkey=
  truncate -s "$payload_size" "$plain"
  if [[ $variant == luks-lvm ]]; then
    make_lvm "$plain" 0 $((payload_size / 512)) "$LUKS_PV_UUID" vgcrypt root:700M swap:8M home:16M
    root_off=${LV_OFF[root]} root_size=${LV_SIZE[root]}
    local swap=$work/swap
    truncate -s "${LV_SIZE[swap]}" "$swap"
    mkswap -q -L swap -U "$LUKS_SWAP_UUID" "$swap" >/dev/null
    dd if="$swap" of="$plain" bs=1M seek="${LV_OFF[swap]}" oflag=seek_bytes conv=notrunc,sparse status=none
    rm -f "$swap"
    # LV home: a LUKS1 volume (payload at 2 MiB) holding an ext4 /home.
    local home_crypt=$work/home.img home_plain=$work/home.plain home_dir=$work/home
    home_off=$((LV_OFF[home] + 2097152)) home_size=$((LV_SIZE[home] - 2097152))
    truncate -s "${LV_SIZE[home]}" "$home_crypt"
    cryptsetup luksFormat -q --type luks1 --hash sha256 --pbkdf-force-iterations 1000 --cipher aes-xts-plain64 \
      --key-size 512 --offset 4096 --uuid "$LUKS_HOME_LUKS_UUID" --key-file "$pw" "$home_crypt"
    home_vkey=$(luks_volume_key "$home_crypt" "$pw")
    dd if="$home_crypt" of="$plain" bs=1M seek="${LV_OFF[home]}" count=2097152 \
      iflag=count_bytes oflag=seek_bytes conv=notrunc,sparse status=none
    rm -f "$home_crypt"
    mkdir -p "$home_dir"
    echo "imgbake test image $name: /home in LUKS LV vgcrypt/home" >"$home_dir/marker"
    truncate -s "$home_size" "$home_plain"
    E2FSPROGS_FAKE_TIME=$FAKE_TIME mkfs.ext4 -q -F -L home -U "$LUKS_HOME_UUID" \
      -E "hash_seed=$LUKS_HOME_UUID" -d "$home_dir" "$home_plain" "$((home_size / 1024))k"
    (cd "$REPO_DIR" && go build -o "$work/xtsencrypt" ./testimages/xtsencrypt)
    "$work/xtsencrypt" -key "$home_vkey" -in "$home_plain" -out "$plain" -offset "$home_off"
    rm -f "$home_plain"
  fi
  E2FSPROGS_FAKE_TIME=$FAKE_TIME mkfs.ext4 -q -F -L root -U "$LUKS_ROOT_UUID" \
    -E "offset=$root_off,hash_seed=$LUKS_ROOT_UUID" -d "$root" "$plain" "$((root_size / 1024))k"
  rm -rf --one-file-system "$root"
  (cd "$REPO_DIR" && go build -o "$work/xtsencrypt" ./testimages/xtsencrypt)
  "$work/xtsencrypt" -key "$vkey" -in "$plain" -out "$disk" -offset "$payload_off" -sector-size "$sector"
  rm -f "$plain"

  local boot=$work/boot
  mkdir -p "$boot"
  echo "imgbake test image $name: /boot" >"$boot/README"
  E2FSPROGS_FAKE_TIME=$FAKE_TIME mkfs.ext4 -q -F -L boot -U "$LUKS_BOOT_UUID" \
    -E "offset=$((boot_start * 512)),hash_seed=$LUKS_BOOT_UUID" -d "$boot" "$disk" "$((boot_size / 2))k"

  local vg= home_json=()
  [[ -z "$home_vkey" ]] || home_json=(home_luks_uuid="$LUKS_HOME_LUKS_UUID" home_volume_key="$home_vkey"
    home_payload_offset="$home_off" home_payload_size="$home_size" home_uuid="$LUKS_HOME_UUID")
  [[ $variant != luks-lvm ]] || vg=vgcrypt
  write_json "$work/out.json" format=raw partition_table=gpt disk_guid="$LUKS_DISK_GUID" \
    luks_partition=2 luks_version="$version" luks_uuid="$luks_uuid" mapper="$mapper" crypttab_name="$tabname" \
    passphrase="$LUKS_PASSPHRASE" volume_key="$vkey" payload_offset="$payload_off" payload_size="$payload_size" sector_size="$sector" \
    root_offset="$root_off" root_size="$root_size" fstype=ext4 label=root root_uuid="$LUKS_ROOT_UUID" \
    boot_partition=1 boot_uuid="$LUKS_BOOT_UUID" hostname=testhost vg="$vg" "${home_json[@]}"
  mv -f "$work/out.json" "$out.json"
  mv -f "$disk" "$out"
  log "$name: done in $(($(date +%s) - start))s"
}

# ---------------------------------------------------------------- Alpine-like and Flatcar-like images
#
# alpine.raw: an Alpine-like layout, NOT real Alpine (no Alpine archive is
# reachable from here): the host's static busybox with its applet links in
# /bin, /sbin, /usr/bin and /usr/sbin as Alpine has them, Alpine's release
# files, passwd/shadow/group in Alpine's form, OpenRC's directory layout
# (/etc/init.d with OpenRC's local and busybox-openrc's crond scripts,
# /etc/runlevels/{sysinit,boot,default,shutdown}, /etc/conf.d, /etc/local.d)
# but no openrc binary, and an apk database (/lib/apk/db/installed) without
# apk. Debian's busybox has no adduser, addgroup or chpasswd applets, unlike
# Alpine's. MBR, one ext4 root partition.
#
# flatcar-usr.raw: a CoreOS/Flatcar-like split of the Debian rootfs: GPT,
# the root ext4 (1, label ROOT) holding /etc, /var, /home, ... and an
# /etc/os-release symlink to ../usr/lib/os-release (Flatcar's os-release),
# and /usr on its own ext4 (2, label USR-A), mounted by fstab read-only
# (`UUID=... /usr ext4 ro 0 0`, as hardened layouts do). Flatcar itself
# mounts /usr from the kernel command line (mount.usr=) on a dm-verity USR-A
# partition: neither is emulated. No package manager: dpkg's database and
# apt/dpkg are removed, as Flatcar has none.
ON_DEMAND_IMAGES+=(alpine.raw flatcar-usr.raw)
ALPINE_DISK_ID=0x5ea1b0da
ALPINE_ROOT_UUID=5ea1b0d0-0000-4000-8000-000000000a91
FLATCAR_DISK_GUID=5ea1b0d0-0000-4000-8000-000000000009
FLATCAR_PARTUUID=5ea1b0d0-0000-4000-8000-00000000009 # + the partition number
FLATCAR_ROOT_UUID=5ea1b0d0-0000-4000-8000-000000000f91
FLATCAR_USR_UUID=5ea1b0d0-0000-4000-8000-000000000f92

build_alpine() {
  local name=alpine.raw out=$CACHE/alpine.raw
  need sfdisk mkfs.ext4 busybox
  local bb
  bb=$(command -v busybox)
  file -L "$bb" 2>/dev/null | grep -q 'statically linked' || die "$bb is not static busybox (install busybox-static)"
  local work start
  mktmp work
  start=$(date +%s)
  log "building $name (Alpine-like layout on the host's static busybox)"
  local disk=$work/disk.raw
  truncate -s 64M "$disk"
  sfdisk -q "$disk" >/dev/null <<PARTITIONS
label: dos
label-id: $ALPINE_DISK_ID
start=2048, type=83, bootable
PARTITIONS
  local root_start root_size
  root_start=$(part_field "$disk" 1 start)
  root_size=$(part_field "$disk" 1 size)
  [[ -n "$root_start" && -n "$root_size" ]] || die "cannot read the partition table of $disk"

  local r=$work/root
  [[ "$r" == "$CACHE"/.tmp.*/root ]] || die "unexpected work directory $r"
  mkdir -p "$r"
  local d
  for d in bin sbin usr/bin usr/sbin usr/lib usr/share lib/apk/db etc/apk etc/init.d etc/conf.d \
    etc/local.d etc/runlevels/sysinit etc/runlevels/boot etc/runlevels/default etc/runlevels/shutdown \
    etc/crontabs etc/profile.d dev proc sys run mnt media opt srv home var/log var/cache var/lib \
    var/spool/cron var/empty; do
    mkdir -p "$r/$d"
  done
  install -d -m 0700 "$r/root"
  install -d -m 1777 "$r/tmp" "$r/var/tmp"
  install -m 0755 "$bb" "$r/bin/busybox"
  # The applet links, each where busybox's own list puts it ("usr/bin/awk"),
  # pointing at /bin/busybox as Alpine's are.
  local applet
  while read -r applet; do
    [[ "$applet" =~ ^(usr/)?s?bin/[A-Za-z0-9._\[-]+$ ]] || continue # linuxrc: not on Alpine
    [[ -e "$r/$applet" || -L "$r/$applet" ]] || ln -s /bin/busybox "$r/$applet"
  done < <("$bb" --list-full)
  [[ -L "$r/bin/sh" && -L "$r/bin/ash" ]] || die "busybox installed no /bin/sh or /bin/ash"

  echo 3.19.1 >"$r/etc/alpine-release"
  cat >"$r/etc/os-release" <<'EOF'
NAME="Alpine Linux"
ID=alpine
VERSION_ID=3.19.1
PRETTY_NAME="Alpine Linux v3.19"
HOME_URL="https://alpinelinux.org/"
BUG_REPORT_URL="https://gitlab.alpinelinux.org/alpine/aports/-/issues"
EOF
  echo "$name" >"$r/etc/imgbake-testimage"
  echo alpine >"$r/etc/hostname"
  cat >"$r/etc/hosts" <<'EOF'
127.0.0.1	localhost localhost.localdomain
::1		localhost localhost.localdomain
EOF
  cat >"$r/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/ash
bin:x:1:1:bin:/bin:/sbin/nologin
daemon:x:2:2:daemon:/sbin:/sbin/nologin
adm:x:3:4:adm:/var/adm:/sbin/nologin
lp:x:4:7:lp:/var/spool/lpd:/sbin/nologin
sync:x:5:0:sync:/sbin:/bin/sync
shutdown:x:6:0:shutdown:/sbin:/sbin/shutdown
halt:x:7:0:halt:/sbin:/sbin/halt
mail:x:8:12:mail:/var/mail:/sbin/nologin
news:x:9:13:news:/usr/lib/news:/sbin/nologin
operator:x:11:0:operator:/root:/sbin/nologin
man:x:13:15:man:/usr/man:/sbin/nologin
cron:x:16:16:cron:/var/spool/cron:/sbin/nologin
ftp:x:21:21::/var/lib/ftp:/sbin/nologin
sshd:x:22:22:sshd:/dev/null:/sbin/nologin
nobody:x:65534:65534:nobody:/:/sbin/nologin
EOF
  cat >"$r/etc/group" <<'EOF'
root:x:0:root
bin:x:1:root,bin,daemon
daemon:x:2:root,bin,daemon
sys:x:3:root,bin,adm
adm:x:4:root,adm,daemon
tty:x:5:
disk:x:6:root,adm
lp:x:7:lp
kmem:x:9:
wheel:x:10:root
floppy:x:11:root
mail:x:12:mail
news:x:13:news
man:x:15:man
cron:x:16:cron
console:x:17:
audio:x:18:
cdrom:x:19:
dialout:x:20:root
ftp:x:21:
sshd:x:22:
input:x:23:
tape:x:26:root
video:x:27:root
netdev:x:28:
kvm:x:34:kvm
shadow:x:42:
users:x:100:games
nogroup:x:65533:
nobody:x:65534:
EOF
  awk -F: '{ printf "%s:%s::0:::::\n", $1, ($1 == "root" ? "*" : "!") }' "$r/etc/passwd" >"$r/etc/shadow"
  chmod 0640 "$r/etc/shadow"
  chgrp 42 "$r/etc/shadow"
  printf '/bin/sh\n/bin/ash\n' >"$r/etc/shells"
  printf 'export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n' >"$r/etc/profile"
  cat >"$r/etc/fstab" <<EOF
UUID=$ALPINE_ROOT_UUID	/	ext4	rw,relatime 0 1
EOF
  cat >"$r/etc/inittab" <<'EOF'
# /etc/inittab (Alpine's): busybox init starts OpenRC
::sysinit:/sbin/openrc sysinit
::sysinit:/sbin/openrc boot
::wait:/sbin/openrc default
tty1::respawn:/sbin/getty 38400 tty1
::ctrlaltdel:/sbin/reboot
::shutdown:/sbin/openrc shutdown
EOF
  # OpenRC's own local service (runs /etc/local.d/*.start at boot) and
  # busybox-openrc's crond, as Alpine ships them. They need openrc-run,
  # which this image does not have.
  cat >"$r/etc/init.d/local" <<'EOF'
#!/sbin/openrc-run

description="Executes user programs in /etc/local.d"

depend()
{
	after *
	keyword -timeout
}

start()
{
	local file has_errors redirect retval
	has_errors=0
	yesno $rc_verbose || redirect='> /dev/null 2>&1'
	ebegin "Starting local"
	eindent
	for file in /etc/local.d/*.start; do
		if [ -x "${file}" ]; then
			vebegin "Executing \"${file}\""
			eval "${file}" $redirect
			retval=$?
			if [ ${retval} -ne 0 ]; then
				has_errors=1
			fi
			veend ${retval} "Execution of \"${file}\" failed."
		fi
	done
	eoutdent
	[ ${has_errors} -eq 0 ]
	eend $?
}
EOF
  cat >"$r/etc/init.d/crond" <<'EOF'
#!/sbin/openrc-run

name="busybox $SVCNAME"
command="/usr/sbin/$SVCNAME"
command_args="$CRON_OPTS"
pidfile="/run/$SVCNAME.pid"

depend() {
	need localmount
	need logger
}
EOF
  chmod 0755 "$r/etc/init.d/local" "$r/etc/init.d/crond"
  printf '# Set the options for the cron daemon\nCRON_OPTS="-c /etc/crontabs"\n' >"$r/etc/conf.d/crond"
  cat >"$r/etc/local.d/README" <<'EOF'
This directory should contain programs or scripts which are to be run
when the local service is started or stopped.
EOF
  printf 'alpine-base\n' >"$r/etc/apk/world"
  printf 'x86_64\n' >"$r/etc/apk/arch"
  printf 'https://dl-cdn.alpinelinux.org/alpine/v3.19/main\nhttps://dl-cdn.alpinelinux.org/alpine/v3.19/community\n' \
    >"$r/etc/apk/repositories"
  # apk's installed database: one record per package, fields "X:value",
  # records separated by a blank line.
  cat >"$r/lib/apk/db/installed" <<'EOF'
C:Q1/HqqLe4Qg8ZXc16TLVSTexAjXHUE=
P:musl
V:1.2.4_git20230717-r4
A:x86_64
S:407278
I:663552
T:the musl c library (libc) implementation
U:https://musl.libc.org/
L:MIT
o:musl
m:Natanael Copa <ncopa@alpinelinux.org>
t:1705320283
F:lib
R:ld-musl-x86_64.so.1
R:libc.musl-x86_64.so.1

C:Q1Tk2AWdvUi8DrNJ5x/8D5aVkTzIY=
P:busybox
V:1.36.1-r15
A:x86_64
S:508223
I:946176
T:Size optimized toolbox of many common UNIX utilities
U:https://busybox.net/
L:GPL-2.0-only
o:busybox
m:Sören Tempel <soeren+alpine@soeren-tempel.net>
t:1703151244
D:so:libc.musl-x86_64.so.1
F:bin
R:busybox

C:Q1rUGNQuSqbOnQ2g6eO0mGLbA2fjs=
P:alpine-baselayout
V:3.4.3-r2
A:x86_64
S:8764
I:331776
T:Alpine base dir structure and init scripts
U:https://git.alpinelinux.org/cgit/aports/tree/main/alpine-baselayout
L:GPL-2.0-only
o:alpine-baselayout
m:Natanael Copa <ncopa@alpinelinux.org>
t:1698943045
D:alpine-baselayout-data=3.4.3-r2 /bin/sh
F:etc

EOF

  E2FSPROGS_FAKE_TIME=$FAKE_TIME mkfs.ext4 -q -F -L alpine-root -U "$ALPINE_ROOT_UUID" \
    -E "offset=$((root_start * 512)),hash_seed=$ALPINE_ROOT_UUID" -d "$r" "$disk" "$((root_size / 2))k"
  rm -rf --one-file-system "$r"
  write_json "$work/out.json" format=raw partition_table=dos disk_id="$ALPINE_DISK_ID" \
    root_partition=1 fstype=ext4 label=alpine-root root_uuid="$ALPINE_ROOT_UUID" hostname=alpine \
    layout="Alpine-like: the host's static busybox with OpenRC's directory layout and an apk database; not real Alpine (no openrc, apk, adduser or chpasswd)"
  mv -f "$work/out.json" "$out.json"
  mv -f "$disk" "$out"
  log "$name: done in $(($(date +%s) - start))s"
}

build_flatcar_usr() {
  local name=flatcar-usr.raw out=$CACHE/flatcar-usr.raw
  need sfdisk mkfs.ext4
  local work start
  mktmp work
  start=$(date +%s)
  log "building $name"
  local disk=$work/disk.raw
  truncate -s 400M "$disk"
  local linux=0FC63DAF-8483-4772-8E79-3D69D8477DE4
  sfdisk -q "$disk" >/dev/null <<PARTITIONS
label: gpt
label-id: $FLATCAR_DISK_GUID
first-lba: 2048
size=48MiB, type=$linux, uuid=${FLATCAR_PARTUUID}1, name="ROOT"
size=320MiB, type=$linux, uuid=${FLATCAR_PARTUUID}2, name="USR-A"
PARTITIONS
  local n part_start=() part_size=()
  for n in 1 2; do
    part_start[n]=$(part_field "$disk" "$n" start)
    part_size[n]=$(part_field "$disk" "$n" size)
    [[ -n "${part_start[n]}" && -n "${part_size[n]}" ]] || die "cannot read partition $n of the partition table"
  done
  local root=$work/root usr=$work/usr
  [[ "$root" == "$CACHE"/.tmp.*/root && "$usr" == "$CACHE"/.tmp.*/usr ]] || die "unexpected work directories $root $usr"
  extract_rootfs "$root" "$name"
  [[ -L "$root/etc/os-release" ]] || die "$root/etc/os-release is not Debian's symlink"
  # Flatcar has no package manager.
  rm -rf "$root/var/lib/dpkg" "$root/etc/apt" "$root/var/lib/apt" "$root/var/cache/apt"
  rm -f "$root"/usr/bin/apt* "$root"/usr/bin/dpkg* "$root/etc/debian_version"
  cat >"$root/usr/lib/os-release" <<'EOF'
NAME="Flatcar Container Linux by Kinvolk"
ID=flatcar
ID_LIKE=coreos
VERSION=3760.2.0
VERSION_ID=3760.2.0
BUILD_ID=2024-01-09-1704
SYSEXT_LEVEL=1.0
PRETTY_NAME="Flatcar Container Linux by Kinvolk 3760.2.0 (Oklo)"
ANSI_COLOR="38;5;75"
HOME_URL="https://flatcar.org/"
BUG_REPORT_URL="https://issues.flatcar.org"
FLATCAR_BOARD="amd64-usr"
CPE_NAME="cpe:2.3:o:flatcar-linux:flatcar_linux:3760.2.0:*:*:*:*:*:*:*"
EOF
  echo "imgbake test image $name: the /usr filesystem" >"$root/usr/README.imgbake"
  echo flatcar >"$root/etc/hostname"
  sed -i 's/testhost/flatcar/' "$root/etc/hosts"
  mv "$root/usr" "$usr"
  mkdir -m 0755 "$root/usr"
  cat >"$root/etc/fstab" <<FSTAB
# /etc/fstab (imgbake test image $name): /usr read-only on its own filesystem
UUID=$FLATCAR_ROOT_UUID	/	ext4	defaults	0	1
UUID=$FLATCAR_USR_UUID	/usr	ext4	ro	0	0
FSTAB
  E2FSPROGS_FAKE_TIME=$FAKE_TIME mkfs.ext4 -q -F -L ROOT -U "$FLATCAR_ROOT_UUID" \
    -E "offset=$((part_start[1] * 512)),hash_seed=$FLATCAR_ROOT_UUID" -d "$root" "$disk" "$((part_size[1] / 2))k"
  E2FSPROGS_FAKE_TIME=$FAKE_TIME mkfs.ext4 -q -F -L USR-A -U "$FLATCAR_USR_UUID" \
    -E "offset=$((part_start[2] * 512)),hash_seed=$FLATCAR_USR_UUID" -d "$usr" "$disk" "$((part_size[2] / 2))k"
  rm -rf --one-file-system "$root" "$usr"
  write_json "$work/out.json" format=raw partition_table=gpt disk_guid="$FLATCAR_DISK_GUID" \
    root_partition=1 fstype=ext4 label=ROOT root_uuid="$FLATCAR_ROOT_UUID" hostname=flatcar \
    usr_partition=2 usr_uuid="$FLATCAR_USR_UUID" \
    layout="Flatcar-like: the Debian rootfs split into a root and a read-only /usr mounted by fstab; not real Flatcar (no mount.usr=, no dm-verity)"
  mv -f "$work/out.json" "$out.json"
  mv -f "$disk" "$out"
  log "$name: done in $(($(date +%s) - start))s"
}

# ---------------------------------------------------------------- RHEL-like and md RAID images
#
# rhel-lvm.raw: RHEL 9's default layout, on the Debian rootfs with the
# os-release and /etc/redhat-release of RHEL 9.3 and an empty rpm database.
# debian-raid1.raw: Debian on md RAID1 arrays, with LVM on one of them.

ON_DEMAND_IMAGES+=(rhel-lvm.raw debian-raid1.raw)
RHEL_DISK_GUID=5ea1b0d0-0000-4000-8000-000000000007
RHEL_PARTUUID=5ea1b0d0-0000-4000-8000-00000000007 # + the partition number
RHEL_BOOT_UUID=5ea1b0d0-0000-4000-8000-0000000007f1
RHEL_ROOT_UUID=5ea1b0d0-0000-4000-8000-0000000007f2
RHEL_SWAP_UUID=5ea1b0d0-0000-4000-8000-0000000007f3
RHEL_PV_UUID=5ea1b7-0000-4000-8000-0000-0000-0007f4
RAID_DISK_GUID=5ea1b0d0-0000-4000-8000-000000000008
RAID_PARTUUID=5ea1b0d0-0000-4000-8000-00000000008 # + the partition number
RAID_BOOT_UUID=5ea1b0d0-0000-4000-8000-0000000008f1
RAID_ROOT_UUID=5ea1b0d0-0000-4000-8000-0000000008f2
RAID_SRV_UUID=5ea1b0d0-0000-4000-8000-0000000008f3
RAID_HOME_UUID=5ea1b0d0-0000-4000-8000-0000000008f4
RAID_PV_UUID=5ea1b8-0000-4000-8000-0000-0000-0008f5
RAID_ARRAY_UUID=5ea1b0d0-0000-4000-8000-0000000008a # + the array number (0, 1, 2)
RAID_MEMBER_UUID=5ea1b0d0-0000-4000-8000-000000000 # + 8, the array number, the member number (0, 1)
RAID_DATA_OFFSET=2048 # sectors: the data of each member starts 1 MiB in

# mkxfs DISK OFFSET SIZE LABEL UUID DIR WORK: an xfs filesystem of DIR,
# SIZE bytes, written into DISK at byte OFFSET (see build_mbr_xfs: made in
# its own file from a protofile, modes fixed with xfs_db, checked with
# xfs_repair -n, copied into place).
mkxfs() {
  local disk=$1 offset=$2 size=$3 label=$4 uuid=$5 dir=$6 work=$7
  [[ -x "$work/protogen" ]] || (cd "$REPO_DIR" && go build -o "$work/protogen" ./testimages/protogen)
  "$work/protogen" -fixups "$work/fixups" "$dir" >"$work/proto"
  local fs=$work/fs.xfs
  rm -f "$fs"
  truncate -s "$size" "$fs"
  mkfs.xfs -q -f -L "$label" -m uuid="$uuid" -p "$work/proto" "$fs"
  if [[ -s "$work/fixups" ]]; then
    local p mode uid gid args=()
    while IFS=$'\t' read -r p mode uid gid; do
      args+=(-c "path $p" -c "write core.mode 0$mode" -c "write core.uid $uid" -c "write core.gid $gid")
    done <"$work/fixups"
    xfs_db -x "${args[@]}" "$fs" >/dev/null
  fi
  xfs_repair -n "$fs" >/dev/null 2>&1 || die "xfs_repair -n found problems in the new filesystem $label"
  [[ "$(xfs_db -r -c uuid "$fs")" == "UUID = $uuid" ]] || die "xfs_db: $label has not the UUID $uuid"
  dd if="$fs" of="$disk" bs=1M seek="$offset" oflag=seek_bytes conv=notrunc,sparse status=none
  rm -f "$fs"
}

# rhel-lvm.raw: GPT, /boot xfs (1, 320 MiB: mkfs.xfs 6.1 makes nothing
# smaller than 300 MB) and an LVM PV (2) with VG rhel, LVs root (xfs) and
# swap; fstab as RHEL 9's anaconda writes it.
build_rhel() {
  local name=rhel-lvm.raw out=$CACHE/rhel-lvm.raw
  need sfdisk mkfs.xfs xfs_db xfs_repair mkswap losetup lvm go python3
  local work start
  mktmp work
  start=$(date +%s)
  log "building $name"
  local disk=$work/disk.raw
  truncate -s 1200M "$disk"
  sfdisk -q "$disk" >/dev/null <<PARTITIONS
label: gpt
label-id: $RHEL_DISK_GUID
first-lba: 2048
size=320MiB, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=${RHEL_PARTUUID}1
type=E6D6D379-F507-44C2-A23C-238F2A3DF928, uuid=${RHEL_PARTUUID}2
PARTITIONS
  local boot_start boot_size pv_start pv_size
  boot_start=$(part_field "$disk" 1 start)
  boot_size=$(part_field "$disk" 1 size)
  pv_start=$(part_field "$disk" 2 start)
  pv_size=$(part_field "$disk" 2 size)
  [[ -n "$boot_start" && -n "$boot_size" && -n "$pv_start" && -n "$pv_size" ]] || die "cannot read partition table"
  make_lvm "$disk" "$pv_start" "$pv_size" "$RHEL_PV_UUID" rhel root:800M swap:16M

  local root=$work/root boot=$work/boot
  [[ -n "$work" && "$root" == "$CACHE"/.tmp.*/root && "$boot" == "$CACHE"/.tmp.*/boot ]] || die "unexpected work directories $root $boot"
  extract_rootfs "$root" "$name"
  mv "$root/boot" "$boot"
  mkdir -m 0555 "$root/boot" # RHEL's /boot mountpoint is 0555
  echo "imgbake test image $name: /boot" >"$boot/README"
  echo rhel9.localdomain >"$root/etc/hostname"
  set_os_release "$root" rhel <<'EOF'
NAME="Red Hat Enterprise Linux"
VERSION="9.3 (Plow)"
ID="rhel"
ID_LIKE="fedora"
VERSION_ID="9.3"
PLATFORM_ID="platform:el9"
PRETTY_NAME="Red Hat Enterprise Linux 9.3 (Plow)"
ANSI_COLOR="0;31"
LOGO="fedora-logo-icon"
CPE_NAME="cpe:/o:redhat:enterprise_linux:9::baseos"
HOME_URL="https://www.redhat.com/"
REDHAT_SUPPORT_PRODUCT="Red Hat Enterprise Linux"
REDHAT_SUPPORT_PRODUCT_VERSION="9.3"
EOF
  echo "Red Hat Enterprise Linux release 9.3 (Plow)" >"$root/etc/redhat-release"
  ln -s redhat-release "$root/etc/system-release"
  # RHEL 9's rpm database: an SQLite file (rpm's Packages table, no
  # package in it), which is what inspection looks for.
  mkdir -p "$root/var/lib/rpm"
  python3 -c 'import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("CREATE TABLE Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL)")
db.commit()' "$root/var/lib/rpm/rpmdb.sqlite"
  cat >"$root/etc/fstab" <<FSTAB

#
# /etc/fstab
# Created by anaconda on Tue Nov 14 22:13:20 2023 (imgbake test image $name)
#
# Accessible filesystems, by reference, are maintained under '/dev/disk/'.
# See man pages fstab(5), findfs(8), mount(8) and/or blkid(8) for more info.
#
# After editing this file, run 'systemctl daemon-reload' to update systemd
# units generated from this file.
#
/dev/mapper/rhel-root   /                       xfs     defaults        0 0
UUID=$RHEL_BOOT_UUID /boot                   xfs     defaults        0 0
/dev/mapper/rhel-swap   none                    swap    defaults        0 0
FSTAB
  mkxfs "$disk" "${LV_OFF[root]}" "${LV_SIZE[root]}" root "$RHEL_ROOT_UUID" "$root" "$work"
  mkxfs "$disk" $((boot_start * 512)) $((boot_size * 512)) boot "$RHEL_BOOT_UUID" "$boot" "$work"
  rm -rf --one-file-system "$root" "$boot"
  local swap=$work/swap
  truncate -s "${LV_SIZE[swap]}" "$swap"
  mkswap -q -U "$RHEL_SWAP_UUID" "$swap" >/dev/null
  dd if="$swap" of="$disk" bs=1M seek="${LV_OFF[swap]}" oflag=seek_bytes conv=notrunc,sparse status=none
  rm -f "$swap"

  write_json "$work/out.json" format=raw partition_table=gpt disk_guid="$RHEL_DISK_GUID" \
    root_partition=0 root_offset="${LV_OFF[root]}" root_size="${LV_SIZE[root]}" fstype=xfs label=root \
    root_uuid="$RHEL_ROOT_UUID" hostname=rhel9.localdomain vg=rhel pv_partition=2 \
    boot_partition=1 boot_uuid="$RHEL_BOOT_UUID" swap_size="${LV_SIZE[swap]}" \
    os_note="the Debian 12 rootfs with the os-release and redhat-release of RHEL 9.3 and an empty rpm database: no rpm or dnf"
  mv -f "$work/out.json" "$out.json"
  mv -f "$disk" "$out"
  log "$name: done in $(($(date +%s) - start))s"
}

# md_member DISK PART ARRAY MEMBER NAME START SIZE: the md RAID1 metadata
# 1.2 superblock of member MEMBER (0 or 1) of array ARRAY (0, 1, 2, named
# NAME) in partition PART (START, SIZE in sectors), written by
# testimages/mdsuper and checked with the host's mdadm --examine on a loop
# device of the partition (mdadm shares no code with it; no md needed).
md_member() {
  local disk=$1 part=$2 array=$3 member=$4 aname=$5 pstart=$6 psize=$7 work=$8
  [[ -x "$work/mdsuper" ]] || (cd "$REPO_DIR" && go build -o "$work/mdsuper" ./testimages/mdsuper)
  local auuid=${RAID_ARRAY_UUID}$array duuid=${RAID_MEMBER_UUID}8$array$member
  "$work/mdsuper" -disk "$disk" -start "$pstart" -size "$psize" -uuid "$auuid" -name "$aname" \
    -devuuid "$duuid" -number "$member" -raid-disks 2 -data-offset "$RAID_DATA_OFFSET" -time "$FAKE_TIME" >/dev/null ||
    die "mdsuper failed for partition $part"
  local loopdev exam
  loopdev=$(losetup --find --show --read-only --offset $((pstart * 512)) --sizelimit $((psize * 512)) "$disk") ||
    die "losetup failed (a RAID image needs a free loop device)"
  exam=$(mdadm --examine "$loopdev" 2>&1) || { losetup -d "$loopdev"; die "mdadm --examine partition $part: $exam"; }
  losetup -d "$loopdev"
  local u=${auuid//-/} want
  for want in "Version : 1.2" "Array UUID : ${u:0:8}:${u:8:8}:${u:16:8}:${u:24:8}" "Name : $aname" \
    "Raid Level : raid1" "Raid Devices : 2" "State : clean" "Device Role : Active device $member" \
    "Data Offset : $RAID_DATA_OFFSET sectors" "- correct" "Array State : AA"; do
    grep -qF -- "$want" <<<"$exam" || die "mdadm --examine of partition $part lacks \"$want\":"$'\n'"$exam"
  done
}

# md_mirror DISK START_A START_B SECTORS: copy the data area of member A
# onto member B (a RAID1 in sync holds the same data on every member).
md_mirror() {
  dd if="$1" of="$1" bs=1M iflag=skip_bytes,count_bytes oflag=seek_bytes conv=notrunc,sparse status=none \
    skip=$((($2 + RAID_DATA_OFFSET) * 512)) seek=$((($3 + RAID_DATA_OFFSET) * 512)) count=$(($4 * 512))
  cmp -s <(dd if="$1" bs=1M iflag=skip_bytes,count_bytes skip=$((($2 + RAID_DATA_OFFSET) * 512)) count=$(($4 * 512)) status=none) \
    <(dd if="$1" bs=1M iflag=skip_bytes,count_bytes skip=$((($3 + RAID_DATA_OFFSET) * 512)) count=$(($4 * 512)) status=none) ||
    die "the two members' data differ after the copy"
}

# debian-raid1.raw: GPT, /boot ext4 (1) and three md RAID1 arrays of two
# member partitions each, metadata 1.2 (the data 1 MiB into each member):
# debian:0 (2, 3) holds the ext4 root (fstab UUID=), debian:1 (4, 5) an LVM
# PV with VG raidvg and LV srv (ext4 at /srv, fstab /dev/mapper/raidvg-srv),
# debian:home (6, 7) the ext4 /home (fstab /dev/md/home). The arrays are
# clean, with no bitmap; mdadm.conf lists them as Debian's installer does.
build_raid1() {
  local name=debian-raid1.raw out=$CACHE/debian-raid1.raw
  need sfdisk mkfs.ext4 losetup lvm mdadm go cmp
  local work start
  mktmp work
  start=$(date +%s)
  log "building $name"
  local disk=$work/disk.raw
  truncate -s 1100M "$disk"
  local linux=0FC63DAF-8483-4772-8E79-3D69D8477DE4 raid=A19D880F-05FC-4D3B-A006-743F0F84911E
  sfdisk -q "$disk" >/dev/null <<PARTITIONS
label: gpt
label-id: $RAID_DISK_GUID
first-lba: 2048
size=32MiB, type=$linux, uuid=${RAID_PARTUUID}1, name="boot"
size=450MiB, type=$raid, uuid=${RAID_PARTUUID}2, name="raid0-a"
size=450MiB, type=$raid, uuid=${RAID_PARTUUID}3, name="raid0-b"
size=40MiB, type=$raid, uuid=${RAID_PARTUUID}4, name="raid1-a"
size=40MiB, type=$raid, uuid=${RAID_PARTUUID}5, name="raid1-b"
size=16MiB, type=$raid, uuid=${RAID_PARTUUID}6, name="raid2-a"
size=16MiB, type=$raid, uuid=${RAID_PARTUUID}7, name="raid2-b"
PARTITIONS
  local n ps=() pz=()
  for n in 1 2 3 4 5 6 7; do
    ps[n]=$(part_field "$disk" "$n" start)
    pz[n]=$(part_field "$disk" "$n" size)
    [[ -n "${ps[n]}" && -n "${pz[n]}" ]] || die "cannot read partition $n of the partition table"
  done
  # Each array's size: what follows the data offset, in whole MiB (as
  # mdsuper writes it).
  local asz=()
  asz[0]=$(((pz[2] - RAID_DATA_OFFSET) & ~2047))
  asz[1]=$(((pz[4] - RAID_DATA_OFFSET) & ~2047))
  asz[2]=$(((pz[6] - RAID_DATA_OFFSET) & ~2047))

  local root=$work/root home=$work/home boot=$work/boot
  [[ -n "$work" && "$root" == "$CACHE"/.tmp.*/root && "$home" == "$CACHE"/.tmp.*/home ]] || die "unexpected work directories $root $home"
  extract_rootfs "$root" "$name"
  mv "$root/home" "$home"
  mv "$root/boot" "$boot"
  mkdir -m 0755 "$root/home" "$root/boot" "$root/srv/data"
  echo "imgbake test image $name: /home on md array debian:home" >"$home/README"
  echo "imgbake test image $name: /boot" >"$boot/README"
  echo debian >"$root/etc/hostname"
  sed -i 's/testhost/debian/' "$root/etc/hosts"
  mkdir -p "$root/etc/mdadm"
  local a mdconf=""
  for a in 0 1 2; do
    local u=${RAID_ARRAY_UUID//-/}$a
    local aname=debian:$a
    [[ $a == 2 ]] && aname=debian:home
    mdconf+="ARRAY /dev/md/${aname#debian:}  metadata=1.2 UUID=${u:0:8}:${u:8:8}:${u:16:8}:${u:24:8} name=$aname"$'\n'
  done
  cat >"$root/etc/mdadm/mdadm.conf" <<EOF
# mdadm.conf (imgbake test image $name, as Debian's installer writes it)
HOMEHOST <system>
MAILADDR root
$mdconf
EOF
  cat >"$root/etc/fstab" <<FSTAB
# /etc/fstab: static file system information (imgbake test image $name)
UUID=$RAID_ROOT_UUID	/	ext4	errors=remount-ro	0	1
UUID=$RAID_BOOT_UUID	/boot	ext4	defaults	0	2
/dev/mapper/raidvg-srv	/srv/data	ext4	defaults	0	2
/dev/md/home	/home	ext4	defaults	0	2
FSTAB

  # Array 0: the root, directly on the array.
  md_member "$disk" 2 0 0 debian:0 "${ps[2]}" "${pz[2]}" "$work"
  md_member "$disk" 3 0 1 debian:0 "${ps[3]}" "${pz[3]}" "$work"
  E2FSPROGS_FAKE_TIME=$FAKE_TIME mkfs.ext4 -q -F -L root -U "$RAID_ROOT_UUID" \
    -E "offset=$(((ps[2] + RAID_DATA_OFFSET) * 512)),hash_seed=$RAID_ROOT_UUID" -d "$root" "$disk" "$((asz[0] / 2))k"
  md_mirror "$disk" "${ps[2]}" "${ps[3]}" "${asz[0]}"
  # Array 1: an LVM PV on the array (its data area), VG raidvg, LV srv.
  md_member "$disk" 4 1 0 debian:1 "${ps[4]}" "${pz[4]}" "$work"
  md_member "$disk" 5 1 1 debian:1 "${ps[5]}" "${pz[5]}" "$work"
  make_lvm "$disk" $((ps[4] + RAID_DATA_OFFSET)) "${asz[1]}" "$RAID_PV_UUID" raidvg srv:16M
  local srv=$work/srv
  mkdir -p "$srv"
  echo "imgbake test image $name: LV raidvg/srv on md array debian:1" >"$srv/marker"
  E2FSPROGS_FAKE_TIME=$FAKE_TIME mkfs.ext4 -q -F -L srv -U "$RAID_SRV_UUID" \
    -E "offset=${LV_OFF[srv]},hash_seed=$RAID_SRV_UUID" -d "$srv" "$disk" "$((LV_SIZE[srv] / 1024))k"
  md_mirror "$disk" "${ps[4]}" "${ps[5]}" "${asz[1]}"
  # Array 2: /home.
  md_member "$disk" 6 2 0 debian:home "${ps[6]}" "${pz[6]}" "$work"
  md_member "$disk" 7 2 1 debian:home "${ps[7]}" "${pz[7]}" "$work"
  E2FSPROGS_FAKE_TIME=$FAKE_TIME mkfs.ext4 -q -F -L home -U "$RAID_HOME_UUID" \
    -E "offset=$(((ps[6] + RAID_DATA_OFFSET) * 512)),hash_seed=$RAID_HOME_UUID" -d "$home" "$disk" "$((asz[2] / 2))k"
  md_mirror "$disk" "${ps[6]}" "${ps[7]}" "${asz[2]}"
  # /boot: a plain partition, as Debian's installer makes it beside RAID.
  E2FSPROGS_FAKE_TIME=$FAKE_TIME mkfs.ext4 -q -F -L boot -U "$RAID_BOOT_UUID" \
    -E "offset=$((ps[1] * 512)),hash_seed=$RAID_BOOT_UUID" -d "$boot" "$disk" "$((pz[1] / 2))k"
  rm -rf --one-file-system "$root" "$home" "$boot" "$srv"

  write_json "$work/out.json" format=raw partition_table=gpt disk_guid="$RAID_DISK_GUID" \
    root_partition=0 fstype=ext4 label=root root_uuid="$RAID_ROOT_UUID" hostname=debian \
    boot_partition=1 boot_uuid="$RAID_BOOT_UUID" vg=raidvg \
    raid_data_offset=$((RAID_DATA_OFFSET * 512)) raid_members="2 3 4 5 6 7" \
    root_offset=$(((ps[2] + RAID_DATA_OFFSET) * 512)) root_mirror_offset=$(((ps[3] + RAID_DATA_OFFSET) * 512)) \
    root_size=$((asz[0] * 512)) data_offset="${LV_OFF[srv]}" \
    data_mirror_offset=$((LV_OFF[srv] - (ps[4] - ps[5]) * 512)) data_size="${LV_SIZE[srv]}" \
    home_partition=0 home_offset=$(((ps[6] + RAID_DATA_OFFSET) * 512)) home_mirror_offset=$(((ps[7] + RAID_DATA_OFFSET) * 512)) \
    root_array_uuid="${RAID_ARRAY_UUID}0" srv_array_uuid="${RAID_ARRAY_UUID}1" home_array_uuid="${RAID_ARRAY_UUID}2"
  mv -f "$work/out.json" "$out.json"
  mv -f "$disk" "$out"
  log "$name: done in $(($(date +%s) - start))s"
}

# ---------------------------------------------------------------- main

built() { [[ -f "$CACHE/$1" && -f "$CACHE/$1.json" ]]; }

main() {
  [[ $(id -u) -eq 0 ]] || die "must run as root (debootstrap, device nodes, file ownership)"
  mkdir -p "$CACHE"
  exec 9>"$CACHE/.lock"
  if ! flock -n 9; then
    log "waiting for another build.sh holding $CACHE/.lock"
    flock 9
  fi
  # Leftovers of an interrupted build (an interrupted debootstrap may leave
  # /proc or /sys mounted inside its target).
  local d m
  for d in "$CACHE"/.tmp.*; do
    [[ -d "$d" ]] || continue
    while read -r m; do
      umount -l "$m" 2>/dev/null || true
    done < <(awk -v p="$d/" 'index($2, p) == 1 { print $2 }' /proc/self/mounts | sort -r)
    rm -rf --one-file-system "$d" || log "warning: cannot remove $d"
  done

  local names=("$@")
  ((${#names[@]})) || names=("${ALL_IMAGES[@]}")
  local n
  for n in "${names[@]}"; do
    case "$n" in
      rootfs) build_rootfs ;;
      debian-gpt | debian-gpt.qcow2)
        built debian-gpt.qcow2 || { build_rootfs && build_gpt; } ;;
      debian-mbr-xfs | debian-mbr-xfs.raw)
        built debian-mbr-xfs.raw || { build_rootfs && build_mbr_xfs; } ;;
      debian-nopart | debian-nopart.raw)
        built debian-nopart.raw || { build_rootfs && build_nopart; } ;;
      debian-python | debian-python.raw)
        built debian-python.raw || { build_rootfs && build_python; } ;;
      debian-lvm | debian-lvm.raw)
        built debian-lvm.raw || { build_rootfs && build_lvm; } ;;
      centos6-lvm | centos6-lvm.raw)
        built centos6-lvm.raw || { build_rootfs && build_centos6; } ;;
      debian-split | debian-split.raw)
        built debian-split.raw || { build_rootfs && build_split; } ;;
      debian-boot | debian-boot.qcow2)
        built debian-boot.qcow2 || { build_rootfs && build_boot; } ;;
      fedora-btrfs | fedora-btrfs.raw)
        built fedora-btrfs.raw || { build_rootfs && build_btrfs fedora-btrfs.raw fedora; } ;;
      opensuse-btrfs | opensuse-btrfs.raw)
        built opensuse-btrfs.raw || { build_rootfs && build_btrfs opensuse-btrfs.raw opensuse; } ;;
      ubuntu-btrfs | ubuntu-btrfs.raw)
        built ubuntu-btrfs.raw || { build_rootfs && build_btrfs ubuntu-btrfs.raw ubuntu; } ;;
      debian-luks2 | debian-luks2.raw | debian-luks1 | debian-luks1.raw | debian-luks-lvm | debian-luks-lvm.raw)
        built "${n%.raw}.raw" || { build_rootfs && build_luks "$(basename "${n%.raw}" | sed 's/^debian-//')"; } ;;
      alpine | alpine.raw)
        built alpine.raw || build_alpine ;;
      flatcar-usr | flatcar-usr.raw)
        built flatcar-usr.raw || { build_rootfs && build_flatcar_usr; } ;;
      rhel-lvm | rhel-lvm.raw)
        built rhel-lvm.raw || { build_rootfs && build_rhel; } ;;
      debian-raid1 | debian-raid1.raw)
        built debian-raid1.raw || { build_rootfs && build_raid1; } ;;
      arch | arch.raw)
        built arch.raw || { build_rootfs && build_arch; } ;;
      *) die "unknown image $n (known: rootfs ${ALL_IMAGES[*]})" ;;
    esac
  done
  for n in "${names[@]}"; do
    [[ "$n" == rootfs ]] && continue
    [[ "$n" == *.* ]] || n=$(printf '%s\n' "${ALL_IMAGES[@]}" "${ON_DEMAND_IMAGES[@]}" | grep "^$n\.")
    printf '%s\n' "$CACHE/$n"
  done
}

main "$@"
