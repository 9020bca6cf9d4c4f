#!/usr/bin/env bash
# Fetch the training photographs of the default model from Debian's wallpaper
# packages and lay them out under data/photos/<package>/ with each package's
# copyright file (licences: see docs/model-card.md).  Never use the
# scikit-image / matplotlib sample images for training: they are the test set.
#   usage: scripts/fetch_training_photos.sh [DEST]   (default data/photos)
set -euo pipefail
dest=${1:-data/photos}
packages=(mate-backgrounds ukui-wallpapers plasma-workspace-wallpapers gnome-backgrounds
          lomiri-wallpapers lomiri-wallpapers-16.04 lomiri-wallpapers-20.04)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$dest"
(cd "$work" && apt-get download "${packages[@]}")
for deb in "$work"/*.deb; do
  pkg=$(dpkg-deb -f "$deb" Package)
  root="$work/x-$pkg"
  dpkg-deb -x "$deb" "$root"
  mkdir -p "$dest/$pkg"
  # One file per picture: where a folder holds the same picture at several
  # resolutions (Plasma's contents/images/), keep the largest.
  find "$root" -type f \( -iname '*.jpg' -o -iname '*.jpeg' -o -iname '*.png' -o -iname '*.webp' \) -size +50k ! -iname '*screenshot*' \
       -printf '%s\t%P\n' | sort -rn | awk -F'\t' '
         { dir = $2; sub(/\/[^\/]*$/, "", dir) }
         dir ~ /contents\/images$/ { if (seen[dir]++) next }
         { print $2 }' | while IFS= read -r rel; do
    cp "$root/$rel" "$dest/$pkg/$(echo "${rel#usr/share/}" | tr '/' '_')"
  done
  cp "$root/usr/share/doc/$pkg/copyright" "$dest/$pkg/COPYRIGHT.txt"
done
find "$dest" -type f ! -name COPYRIGHT.txt | sort > "$dest/FILES.txt"
echo "$(wc -l < "$dest/FILES.txt") images in $dest"
