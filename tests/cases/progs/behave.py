import sys

words = sys.stdin.read().split()
mode, args = words[0], [int(w) for w in words[1:]]
if mode == "sum":
    print(sum(args))
elif mode == "wrong":
    print(sum(args) + 1)
elif mode == "spin":
    while True:
        pass
elif mode == "sleep":
    import time

    time.sleep(60)
elif mode == "alloc":
    block = bytearray(args[0] << 20)
    print(len(block))
elif mode == "raise":
    raise ValueError("boom")
elif mode == "flood":
    while True:
        print("spam " * 20)
elif mode == "argv":
    print(" ".join(sys.argv[1:]))
