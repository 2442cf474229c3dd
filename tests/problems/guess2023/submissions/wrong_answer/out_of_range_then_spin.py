# The validator rejects 0 at once; this program then spins until its time runs out. The
# validator's WA wins: it ended first (the contest systems' rule).
print(0, flush=True)
while True:
    pass
