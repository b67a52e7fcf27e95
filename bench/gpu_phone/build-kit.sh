#!/bin/bash
# Rebuilds the GPU phone kit in .gl/ (run here, on the Debian bookworm development machine,
# from the repo root: bash bench/gpu_phone/build-kit.sh). Not needed on the remote machine.
#
#   .gl/*.deb        the GL loaders (glvnd, Vulkan loader): run.sh unpacks them into /
#   .gl/x11.tar.xz   Xvfb, xkbcomp + xkb-data, xdotool, the X client libraries the phone
#                    dlopens, Mesa's swrast_dri.so + libGLX_mesa (Xvfb's GLX extension needs a
#                    DRI driver; also the llvmpipe baseline) with libLLVM-15, and xz: run.sh
#                    unpacks it into /opt/sapa-x. libz3 and libxml2 (libLLVM-15 links them, for
#                    the static analyzer and Windows manifests, which llvmpipe never calls) are
#                    replaced by stubs built here, which saves ~17 MB (z3 + ICU).
#   .gl/sapa.xz      stripped target/release/sapa
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
grep -qx '/.gl/' .git/info/exclude 2>/dev/null || echo /.gl/ >>.git/info/exclude
W=${W:-/tmp/glkit}
mkdir -p .gl "$W/debs" /tmp/amd64/partial
cp bench/gpu_phone/run.sh bench/gpu_phone/kit.py .gl/
o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
apt-get $o update >/dev/null
(cd .gl && apt-get $o download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)

TOP="xvfb x11-xkb-utils xkb-data xdotool libgl1-mesa-dri libglx-mesa0 libx11-6 libx11-data
 libxcursor1 libxrandr2 libxi6 libxkbcommon0 libxkbcommon-x11-0 libx11-xcb1 libxrender1
 libwayland-client0 libasound2 libffi8 xz-utils"
# Everything these need, less what any Ubuntu 24.04 image has (glibc, libstdc++, zlib, xz,
# zstd, selinux: dpkg itself needs them), the loaders above, and what libLLVM's stubbed
# libraries would pull in. Small base libraries an image might lack (libsystemd0, libaudit1,
# libgcrypt20, libbsd0, libtinfo6, ...) are carried; run.sh links only those the machine lacks.
skip='^(libc6|libgcc-s1|gcc-12-base|libstdc\+\+6|zlib1g|liblzma5|libzstd1|libselinux1|libpcre2-8-0|libelogind0|libaudit-common|sysvinit-utils|lsb-base|x11-common|xserver-common|debconf|libvulkan1|libegl1|libglvnd0|libopengl0|libgl1|libglx0|libgles2|libz3-4|libxml2|libicu72)$'
pkgs=$(apt-cache $o depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
  --no-replaces --no-enhances $TOP 2>/dev/null | grep -v '^[ <]' | sort -u | grep -Ev "$skip")
(cd "$W/debs" && apt-get $o download $pkgs >/dev/null)

S=$W/stage
rm -rf "$S" && mkdir -p "$S"
for p in $pkgs; do dpkg -x "$(ls "$W"/debs/${p}_*.deb | head -1)" "$S"; done
L=$S/usr/lib/x86_64-linux-gnu
rm -rf "$S"/usr/share/{doc,man,lintian,bug,locale,info,bash-completion} "$S"/etc/init.d
find "$L/dri" -name '*_dri.so' ! -name swrast_dri.so -delete
rm -f "$L"/dri/*_drv_video.so
(cd "$S/usr/bin" && ls | grep -vxE 'Xvfb|xkbcomp|xdotool|xz' | xargs rm -f)
rm -rf "$S/usr/sbin"

# Stubs for libLLVM-15's libz3 and libxml2 imports: each function aborts with a message if
# ever called; xmlFree is a data symbol (a function pointer).
mkdir -p "$W/stub"
gen() {
  echo '#include <stdio.h>'; echo '#include <stdlib.h>'
  echo 'static void die(const char *f){fprintf(stderr,"sapa gl kit: stub %s called\n",f);abort();}'
  for s in $(nm -D --undefined-only "$L/libLLVM-15.so.1" | awk '{print $2}' | grep -E "$1" | sed 's/@.*//' | sort -u); do
    if [ "$s" = xmlFree ]; then echo 'void (*xmlFree)(void *) = free;'
    else echo "long $s(void){die(\"$s\");return 0;}"; fi
  done
}
gen '^Z3_' >"$W/stub/z3.c"
gen '^xml' >"$W/stub/xml.c"
printf 'LIBXML2_2.4.30 { global: *; };\nLIBXML2_2.6.0 { global: xmlReadMemory; } LIBXML2_2.4.30;\n' >"$W/stub/xml.map"
gcc -O1 -shared -fPIC -Wl,-soname,libz3.so.4 -o "$L/libz3.so.4" "$W/stub/z3.c"
gcc -O1 -shared -fPIC -Wl,-soname,libxml2.so.2 -Wl,--version-script="$W/stub/xml.map" -o "$L/libxml2.so.2" "$W/stub/xml.c"
strip "$L/libz3.so.4" "$L/libxml2.so.2"
find "$S" -xtype l -delete

(cd "$S" && tar -cf - --sort=name --owner=0 --group=0 .) |
  xz --x86 --lzma2=preset=9e,dict=192MiB -T1 >.gl/x11.tar.xz

strip -o "$W/sapa" target/release/sapa
xz --x86 --lzma2=preset=9e,dict=64MiB -T1 -c "$W/sapa" >.gl/sapa.xz
ls -la .gl && du -cb .gl/* | tail -1
