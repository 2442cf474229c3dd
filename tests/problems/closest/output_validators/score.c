/* Output validator of one C file: 10 points for the exact number, one less for each unit
   off; nothing left is a wrong answer. The score goes to score.txt, the reason to
   judgemessage.txt, both in the feedback directory. */
#include <stdio.h>
#include <stdlib.h>

static void write(const char *dir, const char *name, const char *text, long value) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f) exit(1);
    fprintf(f, text, value);
    fclose(f);
}

int main(int argc, char **argv) {
    if (argc < 4) return 1;
    FILE *in = fopen(argv[1], "r");
    long want, got;
    if (!in || fscanf(in, "%ld", &want) != 1) return 1;
    if (scanf("%ld", &got) != 1) {
        write(argv[3], "judgemessage.txt", "no number%ld", 0);
        return 43;
    }
    long off = labs(got - want);
    if (off >= 10) {
        write(argv[3], "judgemessage.txt", "%ld off", off);
        return 43;
    }
    write(argv[3], "score.txt", "%ld\n", 10 - off);
    write(argv[3], "judgemessage.txt", "%ld off", off);
    return 42;
}
