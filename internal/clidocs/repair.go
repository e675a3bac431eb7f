package clidocs

// repairTexts describe the one-shot commands that look at or repair an image.
var repairTexts = map[string]string{
	"cat": "Each PATH is absolute inside the image; symlinks resolve inside the image, never on the host.\n\n" +
		oneShotExitHelp + "\n\n" + example("imgbake cat -a disk.qcow2 /etc/fstab /var/log/syslog"),
	"copy-in": "Like virt-copy-in: each HOSTPATH becomes IMAGEDIR/BASENAME, keeping modes and symlinks; files\n" +
		"become owned by root. IMAGEDIR must exist in the image. The image changes only if every copy succeeded.\n\n" +
		oneShotExitHelp + "\n\n" + example("imgbake copy-in -a disk.qcow2 ./fix.conf ./dir /etc"),
	"copy-out": "Like virt-copy-out: each IMAGEPATH becomes HOSTDIR/BASENAME. HOSTDIR must exist. Nothing is ever\n" +
		"written outside HOSTDIR, symlinks from the image are never followed on the host, setuid bits are dropped.\n\n" +
		oneShotExitHelp + "\n\n" + example("imgbake copy-out -a disk.qcow2 /var/log /etc/passwd ./out"),
	"edit": "The file is copied to a private temporary file (0600 in a 0700 directory) and opened with $VISUAL,\n" +
		"$EDITOR or vi. When the editor exits successfully with the content changed, the file is written back\n" +
		"atomically keeping its mode and owner; a symlink is followed inside the image. With no change (or a\n" +
		"failing editor) the image is left untouched, byte for byte.\n\n" +
		"-e 's/REGEX/REPLACEMENT/FLAGS' edits without an editor, line by line like sed -E: Go regular expressions,\n" +
		"& and \\1..\\9 in the replacement, flags g (every match) and i (ignore case), any delimiter (s|a|b|).\n" +
		"Repeat -e to apply several in order.\n\n" + oneShotExitHelp + "\n\n" +
		example("imgbake edit -a disk.qcow2 /etc/ssh/sshd_config", "imgbake edit -e 's/^(GRUB_TIMEOUT)=.*/\\1=1/' -a d.qcow2 /etc/default/grub"),
	"fsck": "Uses the appliance's own e2fsck, xfs_repair, fsck.fat and btrfs check (taken from the host), so it works\n" +
		"whatever state the image's tools are in. Nothing is mounted. Without DEVICE every ext2/3/4, xfs, vfat and btrfs filesystem\n" +
		"is checked; DEVICE is an appliance device name as `imgbake inspect` shows it (vda3 or /dev/vda3), an LVM\n" +
		"volume as vg0/root or /dev/mapper/vg0-root.\n" +
		"Without --repair the disks are attached read-only and only checked (e2fsck -n, xfs_repair -n, fsck.fat -n,\n" +
		"btrfs check --readonly). With --repair: e2fsck -f -y; xfs_repair (a dirty log is first replayed by mounting\n" +
		"the filesystem); fsck.fat -a; btrfs check --repair, only when errors were found (it waits 10 s first);\n" +
		"the image is written only if something was repaired.\n\n" +
		"Exit status: 0 every filesystem is clean or was repaired, 1 errors were found (or remain), 2 bad usage\n" +
		"(e.g. no such device), 3 image or appliance error.\n\n" +
		example("imgbake fsck -a disk.qcow2", "imgbake fsck --repair -a disk.qcow2 vda3"),
	"fstab": "Each entry's device (UUID=, LABEL=, PARTUUID=, PARTLABEL=, /dev/disk/by-*, or a disk name such as\n" +
		"/dev/sda2) is looked for among the image's filesystems, the way imgbake mounts them. Device names of\n" +
		"the original machine that cannot be mapped (nvme, md, LVM paths) are reported unverified and never changed.\n\n" +
		example("imgbake fstab check -a disk.qcow2", "imgbake fstab fix --nofail -a disk.qcow2"),
	"fstab check": "Prints every entry with its state: ok, missing, unverified or skipped.\n\n" +
		oneShotExitHelp + "\n\n" + example("imgbake fstab check --json -a disk.qcow2"),
	"fstab fix": "An entry for / whose device is missing is pointed at the root filesystem imgbake found (by UUID)\n" +
		"rather than commented out. Other entries are commented out, or with --nofail keep their line and get\n" +
		"the nofail option so the boot does not wait for them. With nothing to fix the image is untouched.\n\n" +
		oneShotExitHelp + "\n\n" + example("imgbake fstab fix -a disk.qcow2"),
	"ls": "Lists every entry (dot files too), sorted by name. PATH is absolute inside the image; its symlinks\n" +
		"resolve inside the image. -l shows mode, owner (named from the image's own /etc/passwd and /etc/group),\n" +
		"size, modification time and symlink targets; -R descends into subdirectories (not into symlinks, nor\n" +
		"into /proc, /sys and /dev, where the appliance's own are mounted). Names with control characters are\n" +
		"shown quoted.\n\n" + oneShotExitHelp + "\n\n" + example("imgbake ls -l -a disk.qcow2 /etc/ssh"),
	"reset-password": "The new password comes from --password-file (its first line), --random (a generated passphrase,\n" +
		"printed on stdout once the image is written, or written to --random-file with mode 0600), or else is\n" +
		"asked for on the terminal (or read as the first line of stdin when that is not a terminal).\n" +
		"The hash is made by the image's chpasswd with the method its /etc/login.defs asks for, and checked;\n" +
		"when the image's chpasswd is missing or broken, imgbake writes a SHA-512 crypt hash itself. The password\n" +
		"never appears in a command line or in a file of the image.\n\n" + oneShotExitHelp + "\n\n" +
		example("imgbake reset-password -a disk.qcow2 --random root"),
	"shell": "Changes made in the shell are written back to the image when it exits (use --ro to look only).\n" +
		"With --rescue, or automatically when the image has no working /bin/sh, you get the appliance's own\n" +
		"shell with the image mounted under /sysroot.\n\n" +
		example("imgbake shell -a disk.qcow2", "imgbake shell --rescue -a broken.raw"),
	"sysprep": "Like virt-sysprep: each operation removes one kind of trace and is idempotent; --list-operations\n" +
		"shows them, * marking the default set. --operations takes virt-sysprep's syntax: a comma list applied\n" +
		"in order to an empty set, NAME or +NAME adds, -NAME removes, defaults and all stand for the default set\n" +
		"and every operation (e.g. defaults,-tmp-files,cron-spool); the flag may be repeated. Paths are found by\n" +
		"listing directories, never with the image's shell; symlinks are removed as links, never followed.\n" +
		"SSH host keys are made again at first boot (ssh-keygen -A) when the image has sshd.\n\n" + oneShotExitHelp + "\n\n" +
		example("imgbake sysprep -a golden.qcow2", "imgbake sysprep -a golden.qcow2 --operations defaults,-logfiles"),
}
