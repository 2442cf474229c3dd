#!/usr/bin/env bash
# Nothing to install: the python3 image has everything grade.py needs.
