"""Benchmarks: run each as a script (python bench/box.py) or a module (python -m bench.box)."""
