package clidocs

// imageTexts describe the commands that apply recipes to images and manage
// what they use: the appliance, the step-layer cache, the step catalog.
var imageTexts = map[string]string{
	"appliance": "The appliance is the host's kernel plus an initramfs holding imgbake's agent, cached by content\n" +
		"and rebuilt when the kernel, its modules or imgbake change.\n\n" + example("imgbake appliance info"),
	"appliance build": example("imgbake appliance build --kernel /boot/vmlinuz-6.1.0-28-cloud-amd64"),
	"appliance info":  example("imgbake appliance info --memory 1024"),
	"bake": "Runs the recipe on every IMAGE as `imgbake run` would, each in its own appliance and its own\n" +
		"transaction, at most --jobs at a time. Every output line is prefixed with its image's name; one\n" +
		"summary line per image follows. A failing image neither stops nor changes the others. The exit\n" +
		"code is 0 when every image succeeded, else the most serious failure: 130/143 interrupted, then\n" +
		"3 (an image or appliance error), then 1 (a step failed); 2 is bad usage, found before anything starts.\n\n" +
		example("imgbake bake --jobs 4 --output-dir golden/ web.yaml base/*.qcow2"),
	"cache":       example("imgbake cache ls", "imgbake cache prune --max-size 10GiB"),
	"cache ls":    example("imgbake cache ls --cache-dir /srv/imgbake-layers"),
	"cache prune": example("imgbake cache prune --max-size 2GiB"),
	"check": "Reads the recipe, its vars and the host files it names, as run would before touching anything.\n\n" +
		example("imgbake check --var admin=ops recipe.yaml"),
	"completion": "Packages install the scripts where the shells find them; from a source build, load one by hand.\n\n" +
		example(`source <(imgbake completion bash)`, `imgbake completion zsh > "${fpath[1]}/_imgbake"`),
	"inspect": "Also every OS found, LVM volume groups and volumes, usage per filesystem, the kernels in /boot\n" +
		"and the fstab entries that point to nothing.\n\n" + example("imgbake inspect -a disk.qcow2", "imgbake inspect -a disk.qcow2 --json"),
	"resize": "Grows the virtual disk to --size (20G, or +10G for that much more), moves a GPT's backup header to\n" +
		"the new end, grows the partition that holds the root filesystem (or --expand PART) to the end of the\n" +
		"disk, then its LVM physical and logical volume, then the filesystem (ext2/3/4 resize2fs, xfs_growfs,\n" +
		"btrfs filesystem resize), with the appliance's own tools. Shrinking is refused. Only the last\n" +
		"partition of a disk can grow.\n\n" +
		oneShotExitHelp + "\n\n" + example("imgbake resize -a disk.qcow2 --size +2G", "imgbake resize -a disk.raw --size 20G -o big.qcow2"),
	"run": "Boots one appliance for the image, mounts its filesystems and runs every step in order.\n" +
		"Changes go to a private overlay that is committed only when every step succeeded.\n\n" +
		example("imgbake run -a disk.qcow2 recipe.yaml", "imgbake run -a base.qcow2 recipe.yaml -o golden.qcow2 --checksum", "imgbake run --cache -a base.qcow2 -o out.qcow2 recipe.yaml"),
	"sparsify": "Mounts the image's filesystems in the appliance and discards their free space (FITRIM through\n" +
		"discard; a filesystem that cannot discard has its free space zeroed), then writes the result to a new\n" +
		"image with -o (in any --output-format, --compress for a compressed qcow2) or, with --in-place, punches\n" +
		"the holes into the image itself. Filesystems that the image's fstab does not mount are left as they are\n" +
		"(name them with -m).\n\n" +
		oneShotExitHelp + "\n\n" + example("imgbake sparsify -a big.qcow2 -o small.qcow2 --compress"),
	"steps": "imgbake-recipe(5) describes them and the rest of the recipe format.\n\n" + example("imgbake steps --markdown"),
	"version": "Nothing is built or booted, except that the KVM check boots the kernel once per host\n" +
		"boot when /dev/kvm opens, as a run would (the verdict is cached).\n\n" +
		example("imgbake version --json | jq .kvm.usable"),
}
