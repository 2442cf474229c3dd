# Stockade: `make run` starts the service, `make test` runs every test. Both install what they need.
SHELL := /bin/bash
# When this make started: `make test` ends by saying how long all of it took.
STARTED := $(shell date +%s)
VENV ?= .venv
PY := $(VENV)/bin/python
APT_PACKAGES := python3 python3-venv python3-dev gcc libc6-dev make libseccomp2 bubblewrap \
	iproute2 nftables redis-server hyperfine debootstrap runsc qemu-system-x86 erofs-utils \
	squashfs-tools busybox-static chromium
# The compilers and interpreters of every language in profiles/languages (for --rootfs host).
LANGUAGE_PACKAGES = $(shell cat deploy/languages-packages.txt 2>/dev/null)

.PHONY: all deps lock run test test-v2 lint images bench clean

all: test

# Python packages come from the lock files, every one pinned with its hashes, so every machine
# installs what the tests passed with: requirements-dev.lock here (runtime, dev and build
# tools), requirements.lock in the Docker image (runtime only, the same versions). A changed
# lock rebuilds the venv from nothing, so nothing outside it lingers. pyproject.toml keeps
# ranges for those who install Stockade as a library; `make lock` turns them into pins.
$(VENV)/.deps: requirements-dev.lock pyproject.toml
	deploy/ensure-packages.sh $(APT_PACKAGES) $(LANGUAGE_PACKAGES)
	rm -rf $(VENV)
	/usr/bin/python3 -m venv $(VENV)
	$(PY) -m pip install -q --require-hashes -r requirements-dev.lock
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	$(PY) -m pip check
	touch $@

deps: $(VENV)/.deps
	@deploy/ensure-packages.sh $(APT_PACKAGES) $(LANGUAGE_PACKAGES)

# Regenerates both lock files from pyproject.toml: after changing a dependency there (pins that
# still fit are kept), or with UPGRADE=1 to move every pin to the newest release the ranges
# allow. Commit the lock files on their own, after `make test` passed with them.
LOCK_FLAGS = --universal --python-version 3.11 --generate-hashes --quiet \
	--custom-compile-command 'make lock' $(if $(UPGRADE),--upgrade)
BUILD_REQUIRES = /usr/bin/python3 -c 'import tomllib; \
	print(*tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"], "pip", sep="\n")'
lock: deps
	$(BUILD_REQUIRES) | $(VENV)/bin/uv pip compile $(LOCK_FLAGS) - pyproject.toml --extra dev \
		-o requirements-dev.lock
	$(BUILD_REQUIRES) | $(VENV)/bin/uv pip compile $(LOCK_FLAGS) - pyproject.toml \
		-c requirements-dev.lock -o requirements.lock

lint: deps
	$(VENV)/bin/ruff check sandbox service worker tests bench
	$(VENV)/bin/ruff format --check sandbox service worker tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache

# Every language's image (cached in /var/lib/stockade: minutes the first time, then none),
# and the microVM tier's guest kernel, agent and the layer disks the tests boot (other
# images' disks are made on their first microVM box).
images: deps
	$(VENV)/bin/stockade layers build --all
	$(VENV)/bin/stockade microvm prepare debian python3 gcc

test: deps lint images
	@rc=0; $(PY) -m pytest -q -rs tests || rc=$$?; \
	$(PY) -m tests.leftovers || { [ $$rc -ne 0 ] || rc=1; }; \
	echo "make test: $$(( $$(date +%s) - $(STARTED) )) s of wall time, installs and images included"; \
	exit $$rc

# The tests whose outcome depends on the cgroup version, on a real cgroup2 host under systemd:
# the lab VM (tests/v2lab: Debian's kernel under QEMU, a Debian 12 root from the layer store,
# this checkout read-only). Its image is built once and cached like every image.
V2LAB_TIMEOUT ?= 1500
test-v2: deps
	@start=$$(date +%s); rc=0; \
	$(PY) -m tests.v2lab run --systemd --timeout $(V2LAB_TIMEOUT) -- tests/v2lab/suite.sh || rc=$$?; \
	echo "make test-v2: $$(( $$(date +%s) - $$start )) s of wall time, the lab's boot included"; \
	exit $$rc

# The service on 127.0.0.1:2358 (Judge0's port): a private Redis unless STOCKADE_REDIS_URL is
# set, Celery workers and the API under gunicorn. Ctrl-C stops all of it.
run: deps images
	$(VENV)/bin/stockade up

bench: deps
	$(PY) bench/box.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
