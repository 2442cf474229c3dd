# One decimal: outside the tolerance of 1e-3 on 1/3.
a, b = map(int, input().split())
print(f"{a / b:.1f}" if b else "nan")
