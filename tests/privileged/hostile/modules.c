/* Loading and unloading kernel modules. The image is junk: even a working init_module
 * would reject it, but it must not get that far. */
#include "hostile.h"

int main(int argc, char **argv) {
    setup();
    (void)argc;
    char image[256];
    memset(image, 0x7f, sizeof image);
    TRY("init_module", syscall(SYS_init_module, image, sizeof image, ""));
    int fd = open(argv[0], O_RDONLY);
    TRY("finit_module", syscall(SYS_finit_module, fd, "", 0));
    TRY("delete_module", syscall(SYS_delete_module, "ext4", O_NONBLOCK));
    TRY("delete_module_loop", syscall(SYS_delete_module, "loop", O_NONBLOCK | O_TRUNC));
    return 0;
}
