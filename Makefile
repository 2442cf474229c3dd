# Stockade: `make run` starts the service, `make test` runs every test. Both install what they need.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
APT_PACKAGES := python3 python3-venv python3-dev gcc libc6-dev make libseccomp2 bubblewrap \
	iproute2 nftables redis-server hyperfine debootstrap runsc qemu-system-x86 erofs-utils \
	squashfs-tools busybox-static chromium
# The compilers and interpreters of every language in profiles/languages (for --rootfs host).
LANGUAGE_PACKAGES = $(shell cat deploy/languages-packages.txt 2>/dev/null)

.PHONY: all deps run test lint images bench clean

all: test

$(VENV)/.deps: pyproject.toml
	deploy/ensure-packages.sh $(APT_PACKAGES) $(LANGUAGE_PACKAGES)
	/usr/bin/python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

deps: $(VENV)/.deps
	@deploy/ensure-packages.sh $(APT_PACKAGES) $(LANGUAGE_PACKAGES)

lint: deps
	$(VENV)/bin/ruff check sandbox service worker tests bench
	$(VENV)/bin/ruff format --check sandbox service worker tests bench
	$(VENV)/bin/mypy

# Every language's image (cached in /var/lib/stockade: minutes the first time, then none),
# and the microVM tier's guest kernel, agent and the layer disks the tests boot (other
# images' disks are made on their first microVM box).
images: deps
	$(VENV)/bin/stockade layers build --all
	$(VENV)/bin/stockade microvm prepare debian python3 gcc

test: deps lint images
	$(PY) -m pytest -q -rs tests
	$(PY) -m tests.leftovers

# The service on 127.0.0.1:2358 (Judge0's port): a private Redis unless STOCKADE_REDIS_URL is
# set, Celery workers and the API under gunicorn. Ctrl-C stops all of it.
run: deps images
	$(VENV)/bin/stockade up

bench: deps
	$(PY) bench/box.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
