package clidocs

// sessionTexts describe session and its subcommands.
var sessionTexts = map[string]string{
	"session": "A session boots the appliance once and serves every later command on it: `session exec NAME -- true`\n" +
		"costs a round trip, not a boot. Changes go to a private overlay that `session stop` commits\n" +
		"(or drops with --discard). A session whose --owner-pid exits, or that sits idle past\n" +
		"--idle-timeout, stops itself and discards.\n\n" +
		example("imgbake session start -a disk.qcow2 --name web", "imgbake session exec web -- apt-get -y purge nano", "imgbake session stop web"),
	"session exec": "Flags go before NAME. Standard input is sent to the command until it ends (unless -n, or\n" +
		"when it is a terminal: use `imgbake shell` for interactive work). The exit status is the\n" +
		"command's; 255 means the session itself failed, 127 that the command could not be started.\n\n" +
		example("imgbake session exec -e LANG=C web -- dpkg -l"),
	"session run": "As `imgbake run`, on the session's appliance. A failed step stops the recipe; what the\n" +
		"steps before it did stays in the session until `session stop` (or --discard).\n\n" +
		example("imgbake session run web recipe.yaml"),
	"session put": "Like cp: a directory, or a file put onto an existing directory (or a path ending in /),\n" +
		"lands inside it with its own name; otherwise IMAGEPATH is the file written. With --exact\n" +
		"IMAGEPATH is always the file itself. Files are written atomically.\n\n" +
		example("imgbake session put web ./site.conf /etc/nginx/conf.d/", "imgbake session put --mode 0600 web - /etc/secret"),
	"session fetch": "Like cp: a directory, or a file fetched onto an existing host directory (or a path ending\n" +
		"in /), lands inside it with its own name; otherwise HOSTPATH is the file written (atomically,\n" +
		"mode 0644). With --exact HOSTPATH is always the file itself. Nothing from the image is ever\n" +
		"written outside HOSTPATH, symlinks in the image are not followed on the host and setuid\n" +
		"bits are dropped.\n\n" +
		example("imgbake session fetch web /var/log/dpkg.log ./logs/"),
	"session list": example("imgbake session list --json"),
	"session stop": example("imgbake session stop web", "imgbake session stop --discard web"),
	"session start": "Accepts the disk flags of run. The session is a background process that owns qemu; it stops\n" +
		"with session stop, when --owner-pid exits or after --idle-timeout without a request.\n\n" +
		example("imgbake session start -a disk.qcow2 --name web --idle-timeout 30m"),
}
