low, high = 1, 100
while True:
    mid = (low + high) // 2
    print(mid, flush=True)
    answer = input()
    if answer == "correct":
        break
    if answer == "lower":
        high = mid - 1
    else:
        low = mid + 1
