import math

a, b = map(int, input().split())
if b == 0:
    print(math.nan if a == 0 else math.copysign(math.inf, a))
else:
    print(a / b)
