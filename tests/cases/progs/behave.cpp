// One program, many behaviours chosen by the first word of stdin.
#include <iostream>
#include <stdexcept>
#include <string>
#include <vector>

int main() {
    std::string mode;
    long a = 0, b = 0;
    std::cin >> mode >> a >> b;
    if (mode == "sum") std::cout << a + b << "\n";
    else if (mode == "wrong") std::cout << a * b << "\n";
    else if (mode == "spin") { volatile unsigned long x = 0; for (;;) x++; }
    else if (mode == "alloc") { std::vector<char> v(a << 20, 1); std::cout << int(v[a]) << "\n"; }
    else if (mode == "throw") throw std::runtime_error("boom");
    return 0;
}
