# @EXPECTED_RESULTS@: WRONG-ANSWER, TIMELIMIT
n = int(input())
print(-1)
