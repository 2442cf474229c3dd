#include <iostream>
#include "add.h"
int main() {
    int n;
    std::cin >> n;
    std::cout << add_all(n) << "\n";
}
