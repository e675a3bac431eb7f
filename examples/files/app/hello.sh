#!/bin/sh
# Runs inside the image (chroot) during the demo bake.
. /etc/os-release
echo "app=hello"
echo "os=$ID $VERSION_ID"
echo "packages=$(dpkg-query -W -f=. | wc -c)"
