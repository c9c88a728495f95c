# Build, check, test, benchmark, demonstrate and install homed.
#
#   make deps      install the Debian packages the build and the tests need (as root)
#   make build     debug build of the whole workspace
#   make lint      rustfmt and clippy, warnings are errors
#   make test      deps, lint, unit and host integration tests, fuzz targets, VM tests
#   make bench     deps, cargo bench, then every executable benches/*.sh
#   make demo      deps, build, then scripts/demo.sh in a private sandbox
#   make install   release build installed under DESTDIR (PREFIX=/usr by default)

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
# Every step depends on the one before it (deps before lint before tests).
.NOTPARALLEL:

# cargo and rustup live in ~/.cargo/bin, which non-login shells (CI) may not have on PATH.
export PATH := $(HOME)/.cargo/bin:$(PATH)

CARGO ?= cargo
TARGET_DIR ?= $(or $(CARGO_TARGET_DIR),target)

# Tools we build with cargo install (cargo-fuzz) are kept here across runs and fresh clones.
TOOLS_ROOT ?= $(HOME)/.cache/homed/cargo-tools

# Install layout. The daemon's path is written into the D-Bus activation file, the systemd unit and
# the OpenRC script at install time.
DESTDIR ?=
PREFIX ?= /usr
BINDIR ?= $(PREFIX)/bin
LIBEXECDIR ?= $(PREFIX)/libexec
DATADIR ?= $(PREFIX)/share
DOCDIR ?= $(DATADIR)/doc/homed
MULTIARCH := $(shell dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -dumpmachine)
LIBDIR ?= /lib/$(MULTIARCH)
PAMDIR ?= $(LIBDIR)/security
SYSTEMDUNITDIR ?= /lib/systemd/system
DBUSPOLICYDIR ?= $(DATADIR)/dbus-1/system.d
DBUSSERVICEDIR ?= $(DATADIR)/dbus-1/system-services
OPENRCDIR ?= /etc/init.d
ELOGINDSLEEPDIR ?= /lib/elogind/system-sleep
DAEMON_PATH := $(LIBEXECDIR)/homed/homed
# The path the files in dist/ name; replaced by DAEMON_PATH when installing.
DIST_DAEMON_PATH := /usr/libexec/homed/homed

TEST_LOG := $(TARGET_DIR)/make-test.log

.PHONY: all deps build build-release lint test unit-test fuzz-build vm-test bench demo install clean

all: build

deps:
	bash scripts/install-deps.sh

build:
	$(CARGO) build --workspace --locked

build-release:
	$(CARGO) build --workspace --release --locked

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

# Every tier, in order, stopping at the first failure. The last line is one summary of all the
# tests that ran (cargo's, and any "test result:" lines the VM tests print), so that it stays the
# closing line after the fuzz and VM steps.
test: deps lint
	@mkdir -p $(TARGET_DIR) && : > $(TEST_LOG)
	$(MAKE) --no-print-directory unit-test 2>&1 | tee -a $(TEST_LOG)
	$(MAKE) --no-print-directory fuzz-build
	$(MAKE) --no-print-directory vm-test 2>&1 | tee -a $(TEST_LOG)
	@bash scripts/test-summary.sh $(TEST_LOG)

# Two tiers. Plain `cargo test` runs, as any user, what needs no privilege; the tests that need
# root (the host integration tests in tests/sandbox/world.sh, and a few unit tests) are
# #[ignore = "needs root: ..."]. Here, as root, both run (--include-ignored; the NSS benchmark's
# helper is left to benches/nss.sh), then the first tier runs again as uid 65534 to show it needs
# nothing more. The integration tests run the binaries and load the modules of other packages
# (homed, homectl, libnss_homed.so, libpam_homed.so), which `cargo test` alone does not build.
unit-test:
	$(CARGO) build --workspace --locked
	$(CARGO) test --workspace --locked -- --include-ignored --skip nss_bench_publish_daemon_users
	bash scripts/unprivileged-tests.sh

# Keeps the cargo-fuzz targets building. cargo-fuzz wants nightly flags; RUSTC_BOOTSTRAP=1 lets the
# stable toolchain (the only one these machines have) accept them.
fuzz-build:
	@if [ ! -d fuzz ]; then echo "fuzz-build: no fuzz/ folder yet; nothing to build"; exit 0; fi; \
	export PATH="$(TOOLS_ROOT)/bin:$$PATH"; \
	if ! command -v cargo-fuzz >/dev/null; then \
		echo "fuzz-build: installing cargo-fuzz into $(TOOLS_ROOT)"; \
		$(CARGO) install cargo-fuzz --locked --root "$(TOOLS_ROOT)"; \
	fi; \
	echo "fuzz-build: RUSTC_BOOTSTRAP=1 cargo fuzz build"; \
	RUSTC_BOOTSTRAP=1 $(CARGO) fuzz build

vm-test:
	@if [ -f vm-tests/Makefile ]; then \
		$(MAKE) --no-print-directory -C vm-tests; \
	elif [ -x vm-tests/run ]; then \
		vm-tests/run; \
	elif [ -e vm-tests/run ]; then \
		bash vm-tests/run; \
	else \
		echo "vm-test: no vm-tests/Makefile or vm-tests/run yet; skipping the VM tests"; \
	fi

bench: deps
	$(CARGO) bench --workspace --locked
	@shopt -s nullglob; ran=0; \
	for b in benches/*.sh; do \
		if [ -x "$$b" ]; then echo "bench: $$b"; "$$b"; ran=1; fi; \
	done; \
	if [ "$$ran" -eq 0 ]; then echo "bench: no executable benches/*.sh scripts"; fi

demo: deps build
	bash scripts/demo.sh

install: build-release
	install -D -m 0755 $(TARGET_DIR)/release/homed "$(DESTDIR)$(DAEMON_PATH)"
	install -D -m 0755 $(TARGET_DIR)/release/homectl "$(DESTDIR)$(BINDIR)/homectl"
	install -D -m 0644 $(TARGET_DIR)/release/libpam_homed.so "$(DESTDIR)$(PAMDIR)/pam_homed.so"
	install -D -m 0644 $(TARGET_DIR)/release/libnss_homed.so "$(DESTDIR)$(LIBDIR)/libnss_homed.so.2"
	install -D -m 0644 dist/dbus/org.freedesktop.home1.conf "$(DESTDIR)$(DBUSPOLICYDIR)/org.freedesktop.home1.conf"
	install -d "$(DESTDIR)$(DBUSSERVICEDIR)" "$(DESTDIR)$(SYSTEMDUNITDIR)" "$(DESTDIR)$(OPENRCDIR)" "$(DESTDIR)$(ELOGINDSLEEPDIR)"
	sed 's|$(DIST_DAEMON_PATH)|$(DAEMON_PATH)|g' dist/dbus/org.freedesktop.home1.service > "$(DESTDIR)$(DBUSSERVICEDIR)/org.freedesktop.home1.service"
	sed 's|$(DIST_DAEMON_PATH)|$(DAEMON_PATH)|g' dist/systemd/homed.service > "$(DESTDIR)$(SYSTEMDUNITDIR)/homed.service"
	sed 's|$(DIST_DAEMON_PATH)|$(DAEMON_PATH)|g' dist/openrc/homed > "$(DESTDIR)$(OPENRCDIR)/homed"
	chmod 0644 "$(DESTDIR)$(DBUSSERVICEDIR)/org.freedesktop.home1.service" "$(DESTDIR)$(SYSTEMDUNITDIR)/homed.service"
	chmod 0755 "$(DESTDIR)$(OPENRCDIR)/homed"
	install -m 0755 dist/elogind/system-sleep/homed "$(DESTDIR)$(ELOGINDSLEEPDIR)/homed"
	install -d "$(DESTDIR)$(DOCDIR)/examples"
	for d in pam.d-examples nsswitch-examples; do \
		if [ -d "$$d" ]; then cp -R --no-preserve=ownership "$$d" "$(DESTDIR)$(DOCDIR)/examples/"; fi; \
	done

clean:
	$(CARGO) clean
