"""ICPC output validator: every number within 1e-6 absolute or relative; 42 accepts, 43 rejects."""

import os
import sys

_input, answer, feedback = sys.argv[1:4]
with open(answer) as f:
    want = f.read().split()
got = sys.stdin.read().split()


def reject(why: str) -> None:
    with open(os.path.join(feedback, "judgemessage.txt"), "w") as f:
        f.write(why + "\n")
    sys.exit(43)


if len(got) != len(want):
    reject(f"expected {len(want)} numbers, got {len(got)}")
for i, (g, w) in enumerate(zip(got, want, strict=True), 1):
    try:
        gv, wv = float(g), float(w)
    except ValueError:
        reject(f"number {i}: {g!r} is not a number")
    if not (abs(gv - wv) <= 1e-6 or abs(gv - wv) <= 1e-6 * abs(wv)):
        reject(f"number {i}: {g} is not {w}")
sys.exit(42)
