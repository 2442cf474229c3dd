"""Interactor: the team's guesses on stdin, replies on stdout; 42 accepts, 43 rejects, and the
reason in the feedback directory's judgemessage.txt."""

import os
import sys

from game import HIGH, LOW, QUESTIONS, reply


def reject(why: str) -> None:
    with open(os.path.join(sys.argv[3], "judgemessage.txt"), "w") as f:
        f.write(why)
    sys.exit(43)


with open(sys.argv[1]) as f:
    secret = int(f.read())
for _ in range(QUESTIONS):
    line = sys.stdin.readline()
    if not line:
        reject("the program stopped asking")
    try:
        guess = int(line)
    except ValueError:
        reject(f"not a number: {line.strip()[:20]!r}")
    if not LOW <= guess <= HIGH:
        reject(f"{guess} is out of range")
    answer = reply(secret, guess)
    print(answer, flush=True)
    if answer == "correct":
        sys.exit(42)
reject(f"more than {QUESTIONS} questions")
