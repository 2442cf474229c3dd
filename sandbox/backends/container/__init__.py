"""The container tier: each box a clone of a warm init in fresh namespaces on the host's
kernel. Nothing is imported here: the zygote loads this package, and every box copies it."""
