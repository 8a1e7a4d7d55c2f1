#!/usr/bin/env bash
# `make package`: the PyInstaller one-folder bundle of the app and the `mediator` CLI
# (build/dist/mediator-desktop/), then a Debian package of it (build/mediator-desktop_VERSION_ARCH.deb)
# that installs it under /opt/mediator-desktop, links both commands into /usr/bin, and installs the
# desktop entry, AppStream metainfo, icons (SVG and PNG sizes) and MIME types for the manifests.
#
#   packaging/build.sh [--deb-only]    # --deb-only: package the bundle already built
#
# Needs the venv with the `package` extra (pip install -e '.[package]'), binutils (PyInstaller's
# objdump) and dpkg-deb. The desktop/MIME/icon caches are refreshed by the triggers of Debian's
# desktop-file-utils, shared-mime-info and hicolor-icon-theme: the package needs no scripts.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
APP_ID=io.github.mediator.MediatorDesktop
BUNDLE=build/dist/mediator-desktop
VERSION=$("$PY" -c 'from mediator_desktop import __version__; print(__version__)')
ARCH=$(dpkg --print-architecture)
DEB=build/mediator-desktop_${VERSION}_${ARCH}.deb

if [ "${1:-}" != "--deb-only" ] || [ ! -x "$BUNDLE/mediator-desktop" ]; then
  start=$SECONDS
  "$PY" -m PyInstaller --noconfirm --log-level WARN --distpath build/dist --workpath build/pyinstaller \
    packaging/mediator.spec
  ln -sfn mediator-desktop "$BUNDLE/mediator"  # one executable: it looks at the name it was started by
  echo "bundle built in $((SECONDS - start)) s: $(du -sh "$BUNDLE" | cut -f1)"
fi
# A bundle that cannot even say its version is no bundle to ship.
"$BUNDLE/mediator" --version >/dev/null
"$BUNDLE/mediator-desktop" --version >/dev/null

start=$SECONDS
root=build/deb/mediator-desktop
rm -rf build/deb
mkdir -p "$root/DEBIAN" "$root/opt" "$root/usr/bin" "$root/usr/share/applications" \
  "$root/usr/share/metainfo" "$root/usr/share/mime/packages" "$root/usr/share/icons/hicolor/scalable/apps"
cp -a "$BUNDLE" "$root/opt/mediator-desktop"
ln -s /opt/mediator-desktop/mediator-desktop "$root/usr/bin/mediator-desktop"
ln -s /opt/mediator-desktop/mediator "$root/usr/bin/mediator"
install -m 644 packaging/linux/mediator-desktop.desktop "$root/usr/share/applications/"
install -m 644 "packaging/linux/$APP_ID.metainfo.xml" "$root/usr/share/metainfo/"
install -m 644 packaging/linux/mediator-desktop-mime.xml "$root/usr/share/mime/packages/mediator-desktop.xml"
install -m 644 packaging/linux/mediator-desktop.svg "$root/usr/share/icons/hicolor/scalable/apps/"
QT_QPA_PLATFORM=offscreen "$PY" packaging/render_icons.py packaging/linux/mediator-desktop.svg \
  "$root/usr/share/icons/hicolor" >/dev/null
chmod -R u+rwX,go+rX,go-w "$root"
# What the bundle does not carry: the C library, OpenGL/EGL, fonts, X11/xcb and Wayland client
# libraries (Qt's xcb platform plugin), D-Bus (notifications).
cat > "$root/DEBIAN/control" <<CONTROL
Package: mediator-desktop
Version: $VERSION
Architecture: $ARCH
Maintainer: MEDIator Desktop developers <mediator-desktop@localhost>
Installed-Size: $(du -sk --exclude=DEBIAN "$root" | cut -f1)
Depends: libc6 (>= 2.31), libgl1, libegl1, libfontconfig1, libfreetype6, libdbus-1-3, libx11-6, libx11-xcb1,
 libxcb1, libxcb-cursor0, libxcb-icccm4, libxcb-image0, libxcb-keysyms1, libxcb-randr0, libxcb-render-util0,
 libxcb-shape0, libxcb-xfixes0, libxcb-xkb1, libxkbcommon0, libxkbcommon-x11-0
Recommends: libwayland-client0, libwayland-cursor0, libwayland-egl1, hicolor-icon-theme, shared-mime-info,
 desktop-file-utils
Section: science
Priority: optional
Description: share versioned sets of imaging-archive data with your lab
 MEDIator Desktop keeps named, versioned replica sets: pointers to studies,
 series, slides and files that stay in the archives that hold them (TCIA,
 NCI Imaging Data Commons, GDC, DICOMweb, S3, local folders). The lab's
 workstations form a peer cluster that shares the sets.
 .
 This package carries its own Python and Qt under /opt/mediator-desktop and
 the commands mediator-desktop (the app) and mediator (the terminal).
CONTROL
dpkg-deb --root-owner-group -Zzstd -z3 --build "$root" "$DEB" >/dev/null
rm -rf build/deb
echo "debian package built in $((SECONDS - start)) s: $DEB ($(du -h "$DEB" | cut -f1))"
