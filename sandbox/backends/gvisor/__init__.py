"""The gVisor tier: each box under runsc, a user-space kernel between the program and the
host's, with the box's root assembled on the host and its CPU and memory measured there."""
