"""ICPC interactor: the team's guesses on stdin, our replies on stdout; 42 accepts, 43 rejects."""

import sys

with open(sys.argv[1]) as f:
    secret = int(f.read())
for _ in range(10):
    line = sys.stdin.readline()
    if not line:
        sys.exit(43)
    try:
        guess = int(line)
    except ValueError:
        sys.exit(43)
    if guess == secret:
        print("correct", flush=True)
        sys.exit(42)
    print("lower" if secret < guess else "higher", flush=True)
sys.exit(43)
