/* kexec_load, kexec_file_load and reboot. reboot asks only to switch Ctrl-Alt-Del off, so
 * that a broken box could not take the machine down with the test suite. */
#include "hostile.h"
#include <linux/reboot.h>

int main(void) {
    setup();
    TRY("kexec_load", syscall(SYS_kexec_load, 0, 0, NULL, 0));
    TRY("kexec_file_load", syscall(SYS_kexec_file_load, -1, -1, 0, "", 1 /* UNLOAD */));
    TRY("reboot_cad_off", syscall(SYS_reboot, LINUX_REBOOT_MAGIC1, LINUX_REBOOT_MAGIC2,
                                  LINUX_REBOOT_CMD_CAD_OFF, NULL));
    return 0;
}
