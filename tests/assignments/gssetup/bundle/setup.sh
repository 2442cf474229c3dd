#!/usr/bin/env bash
# As on Gradescope: root installs what the tests need, a Debian package and a pip requirement
# (here from the host's mirrors: apt's sources and pip's configured indexes).
set -euo pipefail
apt-get -q update
apt-get -q install -y --no-install-recommends python3-pip python3-six
pip3 install -r /autograder/source/requirements.txt
