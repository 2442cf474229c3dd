import sys

data = sys.stdin.read().split()
print(1 / (int(data[0]) - int(data[0])))
