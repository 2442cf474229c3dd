import math
import sys

data = sys.stdin.read().split()
n = int(data[0])
for i in range(n):
    a, b = float(data[1 + 2 * i]), float(data[2 + 2 * i])
    print(f"{math.hypot(a, b):.9f}")
