/* The kernel keyrings are not namespaced: add_key, request_key and keyctl must be closed. */
#include "hostile.h"

int main(void) {
    setup();
    const long session = -3; /* KEY_SPEC_SESSION_KEYRING */
    TRY("add_key", syscall(SYS_add_key, "user", "stockade-hostile", "secret", 6, session));
    TRY("request_key", syscall(SYS_request_key, "user", "stockade-hostile", NULL, session));
    TRY("keyctl_get_id", syscall(SYS_keyctl, 0 /* GET_KEYRING_ID */, session, 0));
    TRY("keyctl_join", syscall(SYS_keyctl, 1 /* JOIN_SESSION_KEYRING */, "stockade-pwn"));
    TRY("keyctl_search_user", syscall(SYS_keyctl, 10 /* SEARCH */, -4, "user", "x", 0));
    return 0;
}
