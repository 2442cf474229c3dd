#!/bin/sh
# Runs as root in the setup box, in the directory of assignment.toml's files.
set -e
mkdir -p /usr/local/share
echo "made by setup.sh" > /usr/local/share/pysetup-marker
