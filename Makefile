# The two commands a newcomer needs: `make run` and `make test`. Everything else is a helper.
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && echo $$p && break; done)
VENV := .venv
BIN := $(VENV)/bin
# Debian packages: Qt's X11/Wayland plugins for the app; for the tests a real DICOMweb server
# (Orthanc), iproute2 (network namespaces: several "hosts" on one machine), Xvfb and a tray host.
RUN_DEBS := libxcb-icccm4 libxcb-keysyms1 libxcb-cursor0 libxkbcommon-x11-0 libwayland-cursor0
# xvfb and trayer: a real X server with a system tray for the tray test (plus Qt's X11 libraries);
# nginx-light: a fake S3 endpoint that s5cmd and bdbag fetch exports from (tests/helpers/nginx_s3.py).
# default-jdk-headless, junit5, libgoogle-gson-java: the Java SDK's build and JUnit tests, offline (java/build.sh).
TEST_DEBS := orthanc orthanc-dicomweb iproute2 xvfb trayer dunst nginx-light default-jdk-headless junit5 libgoogle-gson-java \
	$(RUN_DEBS)
# nginx plays a static S3 endpoint and curl is a peer in the transfer benchmark.
BENCH_DEBS := nginx-light curl
# make package: PyInstaller needs objdump (binutils); dpkg-deb builds the .deb.
PACKAGE_DEBS := binutils
# make package-test installs the .deb (its Depends: OpenGL, fonts, X11/xcb, D-Bus), runs the app on
# Xvfb and finds its window with xdotool; appstream, desktop-file-utils and shared-mime-info check the
# metainfo, the desktop entry and the MIME types (their dpkg triggers refresh the caches).
PACKAGE_TEST_DEBS := xvfb xdotool appstream desktop-file-utils shared-mime-info hicolor-icon-theme \
	libgl1 libegl1 libfontconfig1 libfreetype6 libdbus-1-3 libx11-6 libx11-xcb1 libxcb1 libxcb-image0 \
	libxcb-randr0 libxcb-render-util0 libxcb-shape0 libxcb-xfixes0 libxcb-xkb1 libxkbcommon0 $(RUN_DEBS)

.PHONY: run test lint typecheck layers pytest bench fuzz clean package package-test bench-package

run: $(VENV)/.installed-app
	@./packaging/ensure-debs.sh $(RUN_DEBS)
	$(BIN)/mediator-desktop

test: $(VENV)/.installed-test
	@./packaging/ensure-debs.sh $(TEST_DEBS)
	$(MAKE) --no-print-directory lint typecheck layers pytest

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.installed-test
	$(BIN)/mypy

layers: $(VENV)/.installed-test
	$(BIN)/lint-imports

pytest: $(VENV)/.installed-test
	QT_QPA_PLATFORM=offscreen $(BIN)/pytest

bench: $(VENV)/.installed-test
	@./packaging/ensure-debs.sh $(BENCH_DEBS)
	$(BIN)/pip install --quiet -e '.[test,bench]'
	@# Every benchmark runs; the target fails when any of them missed a goal or failed.
	@status=0; \
	for bench in manifest store sources transfer publishing safety integrator tracking; do \
		echo "== bench/$$bench.py"; $(BIN)/python bench/$$bench.py || status=1; \
	done; \
	QT_QPA_PLATFORM=offscreen $(BIN)/python bench/ui_latency.py || status=1; \
	exit $$status

# Each parser of outside data fuzzed for FUZZ_SECONDS with a new seed each run (make test runs
# them for seconds each, from a fixed seed: tests/unit/test_fuzz.py);
# new inputs and crashes go to .fuzz/, the committed seeds stay in fuzz/corpus/.
FUZZ_SECONDS ?= 300
fuzz: $(VENV)/.installed-test
	$(BIN)/python -m fuzz.run --all --seconds $(FUZZ_SECONDS)

# The bundle and the Debian package: build/mediator-desktop_VERSION_ARCH.deb (packaging/build.sh).
package: $(VENV)/.installed-package
	@./packaging/ensure-debs.sh $(PACKAGE_DEBS)
	./packaging/build.sh

# Builds the package once, installs it (dpkg -i, as root), runs it as a user would, removes it.
package-test: package $(VENV)/.installed-test
	@./packaging/ensure-debs.sh $(PACKAGE_TEST_DEBS)
	MEDIATOR_PACKAGE_DEB="$$(ls -t build/mediator-desktop_*.deb | head -n 1)" \
		$(BIN)/pytest -p no:cacheprovider tests/package

# bundle_start_s and the other figures of the installed bundle (bench/package.py), as root.
bench-package: package $(VENV)/.installed-test
	@./packaging/ensure-debs.sh $(PACKAGE_TEST_DEBS)
	$(BIN)/python bench/package.py --deb "$$(ls -t build/mediator-desktop_*.deb | head -n 1)"

$(BIN)/python:
	@test -n "$(PYTHON)" || { echo "error: Python 3.11 or newer is needed (python3.11+ on PATH)" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV) || { echo "error: could not create $(VENV); on Debian: apt-get install python3-venv" >&2; exit 1; }
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-app: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	@touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $@ $(VENV)/.installed-app

$(VENV)/.installed-package: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[package]'
	@touch $@

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis .fuzz build *.egg-info
