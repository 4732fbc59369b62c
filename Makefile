# The front door: thin wrappers around meson/ninja and the test scripts.
# `make test` installs the Debian packages it needs when run as root.
BUILD ?= build
ASAN_BUILD ?= build-asan
PREFIX ?= /usr/local
DESTDIR ?=

.PHONY: all build deps test unit host kernel demo install bench fuzz clean

all: build

deps:
	@tests/deps.sh test

$(BUILD)/build.ninja:
	meson setup $(BUILD) --prefix=$(PREFIX)

build: $(BUILD)/build.ninja
	ninja -C $(BUILD)

$(ASAN_BUILD)/build.ninja:
	meson setup $(ASAN_BUILD) -Db_sanitize=address,undefined -Db_lundef=false --buildtype=debug

test: deps
	@tests/run-all.sh

install: build
	DESTDIR=$(DESTDIR) meson install -C $(BUILD) --no-rebuild

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
