/* bpf(2): map creation and a trivial socket filter program. */
#include "hostile.h"
#include <linux/bpf.h>

int main(void) {
    setup();
    union bpf_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.map_type = BPF_MAP_TYPE_ARRAY;
    attr.key_size = 4;
    attr.value_size = 4;
    attr.max_entries = 1;
    TRY("bpf_map_create", syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof attr));
    struct bpf_insn prog[] = {
        {.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = 0, .imm = 0},
        {.code = BPF_JMP | BPF_EXIT},
    };
    memset(&attr, 0, sizeof attr);
    attr.prog_type = BPF_PROG_TYPE_SOCKET_FILTER;
    attr.insns = (unsigned long)prog;
    attr.insn_cnt = 2;
    attr.license = (unsigned long)"GPL";
    TRY("bpf_prog_load", syscall(SYS_bpf, BPF_PROG_LOAD, &attr, sizeof attr));
    return 0;
}
