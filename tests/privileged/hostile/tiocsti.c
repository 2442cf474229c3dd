/* TIOCSTI pushes bytes into a terminal's input queue. stdin is not a terminal, so the
 * kernel would say ENOTTY; seccomp must answer first (EPERM), also with high bits set
 * in the request. TCGETS is the control: it reaches the kernel (ENOTTY). */
#include "hostile.h"
#include <sys/ioctl.h>

int main(void) {
    setup();
    char c = 'x';
    TRY("tiocsti", ioctl(0, TIOCSTI, &c));
    TRY("tiocsti_highbits", syscall(SYS_ioctl, 0, 0x100000000UL | TIOCSTI, &c));
    TRY("tiocsti_stdout", ioctl(1, TIOCSTI, &c));
    struct termios { char b[64]; } t;
    TRY("tcgets_control", ioctl(0, TCGETS, &t));
    TRY("open_dev_tty", open("/dev/tty", O_RDWR));
    return 0;
}
