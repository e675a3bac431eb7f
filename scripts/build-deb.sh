#!/usr/bin/env bash
# Builds imgbake's Debian package from a tree that `make install
# DESTDIR=WORK/debian/imgbake PREFIX=/usr` laid out (`make deb` does both).
#
# The first choice was nfpm (goreleaser's packager, run through go run), but
# the module proxy was not reachable when this was written, so the package is
# made with dpkg-dev's own tools, as debhelper would: dpkg-shlibdeps for the
# libc dependency, dpkg-gencontrol for DEBIAN/control (Installed-Size
# included) from packaging/debian/control, dpkg-deb to build it. Nothing here
# writes ar or tar by hand.
#
# Usage: scripts/build-deb.sh WORK VERSION COMMIT OUTDIR
# Env: DEB_MAINTAINER overrides the control file's Maintainer;
#      SOURCE_DATE_EPOCH dates the changelog (and dpkg-deb's archive).
set -euo pipefail
work=$1 version=$2 commit=$3 outdir=$4
src=$(cd "$(dirname "$0")/.." && pwd)
root=$work/debian/imgbake
[[ -x "$root/usr/bin/imgbake" ]] || { echo "build-deb.sh: $root/usr/bin/imgbake missing: run make install DESTDIR=$root PREFIX=/usr first" >&2; exit 1; }
for tool in dpkg-shlibdeps dpkg-gencontrol dpkg-deb gzip; do
  command -v "$tool" >/dev/null || { echo "build-deb.sh: $tool not found (Debian: apt-get install dpkg-dev)" >&2; exit 1; }
done
if [[ "$(go env GOARCH 2>/dev/null || echo amd64)" != amd64 ]]; then
  echo "build-deb.sh: the appliance is x86_64 (qemu-system-x86_64): only amd64 packages are built" >&2
  exit 1
fi

maintainer=${DEB_MAINTAINER:-$(sed -n 's/^Maintainer: //p' "$src/packaging/debian/control")}
date=$(date -u -R -d "@${SOURCE_DATE_EPOCH:-$(date +%s)}")

# Debian policy: man pages and changelogs gzip -9n (no name or time inside).
find "$root/usr/share/man" -type f ! -name '*.gz' -exec gzip -9nf {} +
doc=$root/usr/share/doc/imgbake
install -d "$doc"
install -m 0644 "$src/packaging/debian/copyright" "$doc/copyright"
gzip -9nc "$src/README.md" > "$doc/README.md.gz"
cat > "$work/debian/changelog" <<CHANGELOG
imgbake ($version) unstable; urgency=medium

  * Built from git commit ${commit:-unknown}.

 -- $maintainer  $date
CHANGELOG
gzip -9nc "$work/debian/changelog" > "$doc/changelog.gz"
cp "$src/packaging/debian/control" "$work/debian/control"

find "$root" -path "$root/DEBIAN" -prune -o -type d -exec chmod 0755 {} +
find "$root" -path "$root/DEBIAN" -prune -o -type f -exec chmod 0644 {} +
chmod 0755 "$root/usr/bin/imgbake"

install -d "$root/DEBIAN"
(cd "$work" &&
  dpkg-shlibdeps -Tdebian/imgbake.substvars debian/imgbake/usr/bin/imgbake &&
  dpkg-gencontrol -pimgbake -v"$version" -Tdebian/imgbake.substvars -Pdebian/imgbake ${DEB_MAINTAINER:+"-DMaintainer=$DEB_MAINTAINER"})
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z | xargs -0 md5sum) > "$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/control" "$root/DEBIAN/md5sums"

mkdir -p "$outdir"
deb=$outdir/imgbake_${version}_amd64.deb
dpkg-deb --build --root-owner-group -Zxz "$root" "$deb"
echo "$deb"
