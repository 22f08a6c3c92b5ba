# pilot: one static binary for fleet monitoring.
#   make / make build   release static binary ./pilot (stripped)
#   make run            build and start the embedded default
#   make test           install what is missing, build, run every test
#   make image          OCI image tarball pilot-image.tar (no container engine needed)
#   make bench          benchmarks (a separate executable, pilot-bench), against ./pilot
#   make fuzz           libFuzzer targets for every decoder (FUZZ_SECONDS each)
#   make install PREFIX=/usr/local

SWIFT      ?= swift
PREFIX     ?= /usr/local
RUN_DIR    ?= .run
STATIC      = -c release --static-swift-stdlib -Xswiftc -static-executable
# libjs-chart.js: Chart.js, embedded in the dashboard at build time.
BUILD_PKGS  = libsodium-dev libsqlite3-dev libsnappy-dev libjs-chart.js
# What the system tests use beyond the build: file(1), shellcheck for the
# POSIX scripts, systemd-analyze for units, umoci for the image, curl for
# the download path, setpriv to run as an unprivileged user, CA certificates
# for the image; iproute2, iptables, python3 and tcpdump for the network
# namespace tests; PostgreSQL for the agent's postgres check; Prometheus to
# scrape the aggregator; for the alert router's receivers Alertmanager, an
# SMTP server (aiosmtpd) and openssl for its certificate; a real browser
# (chromium, driven by selenium) for the dashboard.
TEST_PKGS   = file shellcheck systemd umoci curl util-linux ca-certificates iproute2 iptables python3 tcpdump postgresql postgresql-client prometheus \
              prometheus-alertmanager python3-aiosmtpd openssl chromium chromium-driver python3-selenium

.PHONY: all build debug run test unit-test system-test image install uninstall deps test-deps clean bench fuzz fuzz-ci

all: build

# Installs only what is missing (dpkg -s), with one apt-get update.
define ensure_packages
	@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" != 0 ]; then echo "missing packages:$$missing (run as root, or: sudo apt-get install$$missing)" >&2; exit 1; fi; \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
endef

deps:
	$(call ensure_packages,$(BUILD_PKGS))

test-deps:
	$(call ensure_packages,$(BUILD_PKGS) $(TEST_PKGS))

# The assembler does not track the files it embeds (.incbin): make does.
DASHBOARD_ASM = Sources/CDashboard/assets.S
$(DASHBOARD_ASM): $(wildcard Sources/CDashboard/web/*)
	touch $@

build: deps $(DASHBOARD_ASM)
	$(SWIFT) build $(STATIC) --product pilot
	cp .build/release/pilot pilot.tmp && strip pilot.tmp && mv -f pilot.tmp pilot
	@ls -l pilot | awk '{ printf "pilot: %.1f MB, ", $$5 / 1048576 }'; file -b pilot | cut -d, -f1-5

debug: deps $(DASHBOARD_ASM)
	$(SWIFT) build --product pilot

# The embedded default: a fleet of one on loopback (Ctrl-C stops it;
# RUN_FOR=SECONDS stops it by itself).
run: build
	./pilot up --state-dir $(RUN_DIR) $(if $(RUN_FOR),--for $(RUN_FOR))

unit-test: test-deps $(DASHBOARD_ASM)
	$(SWIFT) build --build-tests
	$(SWIFT) test

# The attacker programs of the hardening tests live in pilot-bench (debug
# build: unit-test has built it already), never in the shipped binary.
system-test: build image
	$(SWIFT) build --product pilot-bench
	PILOT=$(CURDIR)/pilot PILOT_BENCH=$(CURDIR)/.build/debug/pilot-bench REPO=$(CURDIR) IMAGE=$(CURDIR)/pilot-image.tar sh tests/system/run.sh
	sh tests/netns/test_netns_harness.sh
	PILOT=$(CURDIR)/pilot REPO=$(CURDIR) sh tests/netns/test_nat_traversal.sh
	PILOT=$(CURDIR)/pilot REPO=$(CURDIR) sh tests/netns/test_fleet.sh

test: test-deps
	$(MAKE) unit-test
	$(MAKE) system-test
	$(MAKE) fuzz-ci

# Fuzzing (Fuzz/: a separate package, libFuzzer + AddressSanitizer), one
# target per decoder of untrusted bytes. FUZZ_SECONDS per target.
FUZZ_SECONDS ?= 60
fuzz: deps
	sh Fuzz/run.sh $(FUZZ_SECONDS)

# The short run CI does: 5 s per target.
fuzz-ci: deps
	sh Fuzz/run.sh 5

# BENCH_NODES=10000 by default; the registry's heartbeat timeline is
# compressed 10x (30 s -> 3 s) and its CPU scaled back in the report.
BENCH_NODES ?= 10000
# The fleet simulator: real nodes (in worker processes) against a real registry and
# hub, at the real 30 s interval (3 cycles), then a kill -9 of the hub.
# By hand: make bench FLEET_NODES=10000.
FLEET_NODES ?= 1000
bench: build
	$(call ensure_packages,iperf3 mosquitto mosquitto-clients nats-server libnats-dev gcc python3 prometheus-node-exporter collectd-core curl prometheus prometheus-alertmanager chromium chromium-driver python3-selenium)
	$(SWIFT) build -c release --product pilot-bench
	.build/release/pilot-bench registry --pilot ./pilot --nodes $(BENCH_NODES) --interval 30 --compress 10 --window 30
	.build/release/pilot-bench fleet --pilot ./pilot --nodes $(FLEET_NODES) --interval 30 --cycles 3
	.build/release/pilot-bench tunnel --seconds 5
	sh bench/events.sh ./pilot 100000 3
	sh bench/agent.sh ./pilot 30 .build/release/pilot-bench
	sh bench/aggregator.sh ./pilot 10000 10 10
	.build/release/pilot-bench store --days 7 --seed-days 1
	sh bench/router.sh ./pilot 2000 3 100
	sh bench/dashboard.sh ./pilot .build/release/pilot-bench 1000 5

dist/ca-certificates.crt:
	$(call ensure_packages,ca-certificates)
	mkdir -p dist && cp /etc/ssl/certs/ca-certificates.crt $@

image: build dist/ca-certificates.crt
	$(call ensure_packages,umoci)
	sh packaging/build-image.sh Containerfile . pilot-image.tar

install: build
	./install.sh --from ./pilot --prefix $(PREFIX)

uninstall:
	./install.sh --prefix $(PREFIX) --uninstall

clean:
	rm -rf .build pilot pilot.tmp pilot-image.tar dist $(RUN_DIR) Fuzz/.build-fuzz Fuzz/crashes
