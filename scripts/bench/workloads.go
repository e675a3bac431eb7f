package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
)

// Recipes for imgbake and the equivalent virt-customize / guestfish command
// lines. Every workload runs on a fresh sparse copy of the same image.

const (
	toolIB = "imgbake"
	toolLG = "libguestfs"
)

// yq quotes s as a YAML double-quoted scalar (JSON strings are valid YAML).
func yq(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// runsRecipe is n `run: "true"` steps.
func runsRecipe(n int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "name: bench %d x run true\nsteps:\n", n)
	for i := 0; i < n; i++ {
		b.WriteString("  - run: \"true\"\n")
	}
	return b.String()
}

func runsArgs(n int) []string {
	var a []string
	for i := 0; i < n; i++ {
		a = append(a, "--run-command", "true")
	}
	return a
}

// writeContent is the content of the i-th small write of workload 3.
func writeContent(i int) (path, content string) {
	return fmt.Sprintf("/root/bench-w%02d.conf", i), fmt.Sprintf("key%02d = value %d\n", i, i*i)
}

// writesRecipe is one `run: "true"` (the baseline) plus n small writes.
func writesRecipe(n int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "name: bench run true + %d writes\nsteps:\n  - run: \"true\"\n", n)
	for i := 1; i <= n; i++ {
		p, c := writeContent(i)
		fmt.Fprintf(&b, "  - write: {path: %s, content: %s}\n", p, yq(c))
	}
	return b.String()
}

func writesArgs(n int) []string {
	a := []string{"--run-command", "true"}
	for i := 1; i <= n; i++ {
		p, c := writeContent(i)
		a = append(a, "--write", p+":"+c)
	}
	return a
}

// realStep is one step of the realistic recipe, in both tools' terms.
type realStep struct {
	ib string   // YAML flow of the step, without the leading "- "
	lg []string // virt-customize options
}

// realSteps is the realistic 20-step recipe of workload 4. imgbake has no
// `user` step yet, so users are made with `run: useradd ...` on both sides.
func realSteps(appDir string) []realStep {
	run := func(cmd string) realStep { return realStep{"run: " + yq(cmd), []string{"--run-command", cmd}} }
	write := func(path, content string) realStep {
		return realStep{fmt.Sprintf("write: {path: %s, content: %s}", path, yq(content)), []string{"--write", path + ":" + content}}
	}
	mkdir := func(path string) realStep { return realStep{"mkdir: {path: " + path + "}", []string{"--mkdir", path}} }
	service := "[Unit]\nDescription=bench app\n[Service]\nUser=app\nExecStart=/opt/app/bin/app.sh\n[Install]\nWantedBy=multi-user.target\n"
	return []realStep{
		{"hostname: bench-web01", []string{"--hostname", "bench-web01"}},
		write("/etc/motd", "Built by the imgbake benchmark.\n"),
		mkdir("/opt/app"),
		mkdir("/etc/app"),
		mkdir("/var/lib/app"),
		{fmt.Sprintf("copy_in: {src: %s, dest: /opt}", yq(filepath.Join(appDir, "app"))), []string{"--copy-in", filepath.Join(appDir, "app") + ":/opt"}},
		run("useradd --system --home-dir /var/lib/app --shell /usr/sbin/nologin app"),
		run("useradd --create-home --shell /bin/bash deploy"),
		write("/etc/app/app.conf", "listen 0.0.0.0 port 8080\nworkers 4\n"),
		run("chown -R app:app /var/lib/app /etc/app/app.conf && chmod 0640 /etc/app/app.conf"),
		mkdir("/etc/systemd/system/multi-user.target.wants"),
		write("/etc/systemd/system/app.service", service),
		run("ln -sf /etc/systemd/system/app.service /etc/systemd/system/multi-user.target.wants/app.service"),
		write("/etc/app/limits.conf", "nofile 65536\n"),
		write("/etc/profile.d/app.sh", "export APP_HOME=/opt/app\n"),
		write("/etc/default/app", "APP_OPTS=--verbose\n"),
		run("chmod 0755 /opt/app/bin/app.sh"),
		run("echo deploy >> /etc/app/operators"),
		run("sha256sum /opt/app/bin/app.sh > /var/lib/app/MANIFEST"),
		run("echo built $(date -u +%Y-%m-%d) > /etc/app/BUILD"),
	}
}

func realRecipe(appDir string, extra ...string) string {
	var b strings.Builder
	b.WriteString("name: bench realistic web app\nsteps:\n")
	for _, s := range realSteps(appDir) {
		b.WriteString("  - " + s.ib + "\n")
	}
	for _, s := range extra {
		b.WriteString("  - " + s + "\n")
	}
	return b.String()
}

func realArgs(appDir string) []string {
	var a []string
	for _, s := range realSteps(appDir) {
		a = append(a, s.lg...)
	}
	return a
}

// memSteps end the workload 7 recipe: the guest's /proc/meminfo (the
// appliance's, /proc is bound into the image root) copied to the host.
func memSteps(outDir string) []string {
	return []string{
		`run: "cat /proc/meminfo > /root/bench-meminfo"`,
		fmt.Sprintf("copy_out: {src: /root/bench-meminfo, dest: %s}", yq(outDir)),
	}
}

func copyRecipe(payloadDir string) string {
	return fmt.Sprintf("name: bench copy-in\nsteps:\n  - copy_in: {src: %s, dest: /opt}\n", yq(payloadDir))
}

// taskRecipe is the i-th one-step task of workload 6; each has its own name,
// so the run-once state never reports "already applied".
func taskRecipe(i int) string {
	return fmt.Sprintf("name: bench task %02d\nsteps:\n  - run: \"true\"\n", i)
}
