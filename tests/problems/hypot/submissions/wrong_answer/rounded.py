import sys

data = sys.stdin.read().split()
for i in range(int(data[0])):
    a, b = float(data[1 + 2 * i]), float(data[2 + 2 * i])
    print(f"{(a * a + b * b) ** 0.5:.2f}")
