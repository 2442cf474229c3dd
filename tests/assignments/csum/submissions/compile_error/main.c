/* Does not compile: 0 of 10. */
int main(void) { return missing; }
