#!/usr/bin/env bash
# Builds the Java SDK (java/build/mediator-sdk.jar) and runs its JUnit 5 tests against real headless
# nodes, offline: the JDK, Gson and JUnit from Debian's packages (make test installs them:
# default-jdk-headless junit5 libgoogle-gson-java). Usage: java/build.sh [--no-tests] [JUnit options...]
# Environment: BUILD_DIR (default java/build), MEDIATOR_PYTHON (default .venv/bin/python of the checkout),
# GSON_JAR, JUNIT_JAR.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
gson=${GSON_JAR:-/usr/share/java/gson.jar}
junit=${JUNIT_JAR:-/usr/share/java/junit-platform-console-standalone.jar}
out=${BUILD_DIR:-$here/build}
missing=()
command -v javac >/dev/null 2>&1 || missing+=("default-jdk-headless (javac)")
[ -f "$gson" ] || missing+=("libgoogle-gson-java ($gson)")
[ -f "$junit" ] || missing+=("junit5 ($junit)")
if [ ${#missing[@]} -gt 0 ]; then
  echo "error: missing for the Java SDK: ${missing[*]}; make test installs them" \
       "(or: sudo apt-get install --no-install-recommends default-jdk-headless junit5 libgoogle-gson-java)" >&2
  exit 3
fi
rm -rf "$out/main" "$out/test" "$out/reports"
mkdir -p "$out/main" "$out/test"
mapfile -t main_sources < <(find "$here/src/main/java" -name '*.java' | sort)
mapfile -t test_sources < <(find "$here/src/test/java" -name '*.java' | sort)
# -Xdoclint: the public API's Javadoc must be complete and well-formed (warnings are errors).
javac --release 17 -encoding UTF-8 -Xlint:all -Xdoclint:all/protected -Werror \
  -cp "$gson" -d "$out/main" "${main_sources[@]}"
jar --create --file "$out/mediator-sdk.jar" -C "$out/main" .
echo "built $out/mediator-sdk.jar"
if [ "${1:-}" = "--no-tests" ]; then
  exit 0
fi
javac --release 17 -encoding UTF-8 -Xlint:all,-processing -Werror \
  -cp "$out/main:$gson:$junit" -d "$out/test" "${test_sources[@]}"
colours=()
[ -t 1 ] || colours=(--disable-ansi-colors)
exec java -Dmediator.repo="$repo" -jar "$junit" \
  --class-path "$out/main:$out/test:$gson" --select-package org.mediator.sdk \
  --disable-banner "${colours[@]}" --details=tree --fail-if-no-tests --reports-dir "$out/reports" "$@"
