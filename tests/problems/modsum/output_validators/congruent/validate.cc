// Accepts the team's number when it is congruent to the answer modulo the `mod` flag.
#include <fstream>
#include <iostream>
#include "validate.h"

int main(int argc, char **argv) {
    if (argc < 4) return 1;
    long long m = modulus_from(argc, argv);
    if (m <= 0) {
        std::cerr << "no mod flag" << std::endl;
        return 1;  // neither 42 nor 43: the validator itself failed
    }
    std::ifstream answer(argv[2]);
    long long want = 0, got = 0;
    answer >> want;
    if (!(std::cin >> got)) {
        judge_message(argv[3], "no number in the output");
        return 43;
    }
    std::string extra;
    if (std::cin >> extra) {
        judge_message(argv[3], "trailing output");
        return 43;
    }
    if (((got - want) % m + m) % m != 0) {
        judge_message(argv[3], "got " + std::to_string(got) + ", not " + std::to_string(want) +
                                   " modulo " + std::to_string(m));
        return 43;
    }
    return 42;
}
