"""The hidden test of the calculator assignment: SECRET-HIDDEN-TEST-MARKER."""

import unittest

from calc import divide


class HiddenTests(unittest.TestCase):
    def test_divide(self) -> None:
        self.assertEqual(divide(6, 3), 2)
        self.assertIsNone(divide(1, 0))
