"""The game's rules: numbers 1 to 100, seven questions."""

LOW, HIGH, QUESTIONS = 1, 100, 7


def reply(secret: int, guess: int) -> str:
    if guess == secret:
        return "correct"
    return "lower" if secret < guess else "higher"
