// Validator helpers: the flags and the feedback directory.
#pragma once
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

// The last `mod M` wins: testdata.yaml's flags come after problem.yaml's.
inline long long modulus_from(int argc, char **argv) {
    long long m = 0;
    for (int i = 4; i + 1 < argc; i++)
        if (std::strcmp(argv[i], "mod") == 0) m = std::atoll(argv[i + 1]);
    return m;
}

inline void judge_message(const char *dir, const std::string &text) {
    std::string path = std::string(dir) + "/judgemessage.txt";
    if (FILE *f = std::fopen(path.c_str(), "w")) {
        std::fputs(text.c_str(), f);
        std::fclose(f);
    }
}
