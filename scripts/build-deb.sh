#!/usr/bin/env bash
# Builds imgbake's Debian package with nfpm (goreleaser's packager, pinned in
# packaging/nfpm/go.mod and run with `go tool`) from packaging/nfpm.yaml and
# the tree that `make install DESTDIR=WORK/stage PREFIX=/usr` laid out
# (`make deb` does both). nfpm writes the package (control, md5sums,
# Installed-Size, archives); this script only prepares what Debian's policy
# wants in the tree and what nfpm cannot know:
#   - man pages and changelog gzip -9n (no name or time inside);
#   - /usr/share/doc/imgbake: copyright, changelog.gz (a native package's
#     changelog, in Debian's format), README.md.gz; lintian's overrides;
#   - modes (directories 0755, files 0644, the program 0755) and times
#     (SOURCE_DATE_EPOCH) of the staged files;
#   - the libc dependency, from dpkg-shlibdeps (the binary is linked
#     against libc for the cgo resolver).
#
# Usage: scripts/build-deb.sh WORK VERSION COMMIT OUTDIR
# Env: DEB_MAINTAINER overrides the package's Maintainer;
#      SOURCE_DATE_EPOCH dates the changelog and the package's files.
set -euo pipefail
(($# == 4)) || { echo "usage: scripts/build-deb.sh WORK VERSION COMMIT OUTDIR" >&2; exit 2; }
work=$(cd "$1" && pwd) version=$2 commit=$3
outdir=$(mkdir -p "$4" && cd "$4" && pwd)
src=$(cd "$(dirname "$0")/.." && pwd)
stage=$work/stage
[[ -x "$stage/usr/bin/imgbake" ]] || { echo "build-deb.sh: $stage/usr/bin/imgbake missing: run make install DESTDIR=$stage PREFIX=/usr first" >&2; exit 1; }
for tool in dpkg-shlibdeps gzip go; do
  command -v "$tool" >/dev/null || { echo "build-deb.sh: $tool not found (Debian: apt-get install dpkg-dev gzip golang)" >&2; exit 1; }
done
if [[ "$(go env GOARCH)" != amd64 ]]; then
  echo "build-deb.sh: the appliance is x86_64 (qemu-system-x86_64): only amd64 packages are built" >&2
  exit 1
fi

maintainer=${DEB_MAINTAINER:-imgbake maintainers <maintainers@users.noreply.h-seed-5f2d5e9f.example>}
epoch=${SOURCE_DATE_EPOCH:-$(date +%s)}
export SOURCE_DATE_EPOCH=$epoch

find "$stage/usr/share/man" -type f ! -name '*.gz' -exec gzip -9nf {} +
doc=$stage/usr/share/doc/imgbake
install -d "$doc"
install -m 0644 "$src/packaging/copyright" "$doc/copyright"
gzip -9nc "$src/README.md" > "$doc/README.md.gz"
install -D -m 0644 "$src/packaging/lintian-overrides" "$stage/usr/share/lintian/overrides/imgbake"
gzip -9nc > "$doc/changelog.gz" <<CHANGELOG
imgbake ($version) unstable; urgency=medium

  * Built from git commit ${commit:-unknown}.

 -- $maintainer  $(date -u -R -d "@$epoch")
CHANGELOG

find "$stage" -type d -exec chmod 0755 {} +
find "$stage" -type f -exec chmod 0644 {} +
chmod 0755 "$stage/usr/bin/imgbake"
find "$stage" -exec touch -h -d "@$epoch" {} +

# dpkg-shlibdeps reads a debian/control; a minimal one in a scratch directory.
shl=$work/shlibdeps
install -d "$shl/debian"
printf 'Source: imgbake\n\nPackage: imgbake\nArchitecture: amd64\n' > "$shl/debian/control"
shlibs=$(cd "$shl" && dpkg-shlibdeps -O "$stage/usr/bin/imgbake" | sed -n 's/^shlibs:Depends=//p')
[[ -n "$shlibs" ]] || { echo "build-deb.sh: dpkg-shlibdeps found no shared-library dependency of $stage/usr/bin/imgbake" >&2; exit 1; }

deb=$outdir/imgbake_${version}_amd64.deb
rm -f "$deb"
IMGBAKE_VERSION=$version IMGBAKE_STAGE=$stage IMGBAKE_MAINTAINER=$maintainer IMGBAKE_SHLIBS=$shlibs \
  go -C "$src/packaging/nfpm" tool nfpm package --config "$src/packaging/nfpm.yaml" --packager deb --target "$deb" >&2
echo "$deb"
