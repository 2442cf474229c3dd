"""Grading student work: the native assignment format, autograder bundles, gradebooks."""
