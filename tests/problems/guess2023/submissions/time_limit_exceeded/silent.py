# Never asks: the program runs out of time first, then the validator sees the end of input.
while True:
    pass
