/* personality(2): READ_IMPLIES_EXEC (every readable page executable) and
 * ADDR_NO_RANDOMIZE must be refused; the query must still work and show no change. */
#include "hostile.h"
#include <sys/personality.h>

int main(void) {
    setup();
    TRY("read_implies_exec", personality(PER_LINUX | READ_IMPLIES_EXEC));
    TRY("addr_no_randomize", personality(PER_LINUX | ADDR_NO_RANDOMIZE));
    TRY("both", personality(READ_IMPLIES_EXEC | ADDR_NO_RANDOMIZE));
    TRY("highbits", syscall(SYS_personality, (1UL << 32) | READ_IMPLIES_EXEC));
    long now = personality(0xffffffff);
    printf("persona_now=%#lx\n", now);
    return 0;
}
