# The front door: thin wrappers around meson/ninja and the scripts in tests/,
# bench/ and fuzz/. Targets that need Debian packages install the missing
# ones first when run as root (tests/deps.sh, idempotent).
BUILD ?= build
PREFIX ?= /usr/local
DESTDIR ?=
FUZZ_SECONDS ?= 300
# Which benchmarks `make bench` runs, in order: provision (local files), http (over HTTP),
# thin (dm-thin volumes, in user-mode Linux), align (the layouts on 4096-byte-sector loop devices),
# registry (containerDisks pulled from a registry on loopback, against skopeo).
BENCH ?= provision http thin align registry
# make soak: the kernel power-cut suite (guest_powercut.sh) at length: drop
# subsets tried per stretch of writes and killed runs (make test: 256 and
# 12), and the guest's time limit in seconds.
SOAK_SEEDS ?= 2048
SOAK_KILLS ?= 96
SOAK_TIMEOUT ?= 7200

.PHONY: all build test soak demo install bench fuzz clean

all: build

$(BUILD)/build.ninja:
	@tests/deps.sh build
	meson setup $(BUILD) --prefix=$(PREFIX)

build: $(BUILD)/build.ninja
	ninja -C $(BUILD)

test:
	@tests/deps.sh test
	@tests/run-all.sh

soak: build
	@tests/deps.sh test
	POWERCUT_SEEDS=$(SOAK_SEEDS) POWERCUT_KILLS=$(SOAK_KILLS) UML_TIMEOUT=$(SOAK_TIMEOUT) \
		tests/kernel/test_kernel.sh guest_powercut.sh

demo:
	@tests/deps.sh demo
	@$(MAKE) --no-print-directory build
	demo/run.sh

install: build
	meson configure $(BUILD) --prefix=$(PREFIX) >/dev/null
	ninja -C $(BUILD)
	meson install -C $(BUILD) --no-rebuild $(if $(DESTDIR),--destdir $(abspath $(DESTDIR)))

bench: build
	@tests/deps.sh bench
	@for b in $(BENCH); do \
		case $$b in provision | http | thin | align | registry) ;; *) echo "make bench: BENCH names provision, http, thin, align and registry, not $$b" >&2; exit 2 ;; esac; \
		echo "bench/$$b"; bench/$$b || exit $$?; \
	done

fuzz:
	@tests/deps.sh test
	fuzz/run.sh $(FUZZ_SECONDS)

clean:
	rm -rf $(BUILD) build-asan build-tsan build-fuzz
