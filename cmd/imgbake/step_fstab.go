package main

import (
	"context"

	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/recipes"
)

func init() {
	registerStep("fstab", `fstab: {spec: LABEL=data, file: /data, vfstype: ext4, mntops: "defaults,nofail", passno: 2}   # add or replace the /data entry`,
		func(ctx context.Context, r *runner, st recipes.Step) (fsops.Result, error) {
			op := st.Op.(*recipes.Fstab)
			return fsops.Fstab(ctx, r.sess, fsops.FstabEntry{Spec: op.Spec, File: op.File, VFSType: op.VFSType,
				MntOps: op.MntOps, Freq: op.Freq, PassNo: op.PassNo})
		})
}
