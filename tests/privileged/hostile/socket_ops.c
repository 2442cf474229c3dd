/* socketpair in the families socket() refuses (the kernel makes both sockets before the
 * family refuses to pair them), socket filters attached with setsockopt (the BPF verifier
 * and JIT), and TCP_ULP (an upper-layer protocol takes over the socket's operations).
 * The controls must still work: an AF_UNIX pair, SO_REUSEADDR, TCP_NODELAY. */
#include "hostile.h"
#include <linux/filter.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif
#ifndef IPPROTO_MPTCP
#define IPPROTO_MPTCP 262
#endif
#ifndef SO_ATTACH_BPF
#define SO_ATTACH_BPF 50
#endif
#ifndef SO_ATTACH_REUSEPORT_CBPF
#define SO_ATTACH_REUSEPORT_CBPF 51
#endif
#ifndef TCP_ULP
#define TCP_ULP 31
#endif

int main(void) {
    setup();
    int sv[2];
    TRY("socketpair_netlink", socketpair(AF_NETLINK, SOCK_RAW, 0, sv));
    TRY("socketpair_netlink_dgram", socketpair(AF_NETLINK, SOCK_DGRAM, 0, sv));
    TRY("socketpair_vsock", socketpair(AF_VSOCK, SOCK_STREAM, 0, sv));
    TRY("socketpair_mptcp", socketpair(AF_INET, SOCK_STREAM, IPPROTO_MPTCP, sv));
    TRY("socketpair_sctp", socketpair(AF_INET, SOCK_STREAM, IPPROTO_SCTP, sv));
    TRY("socketpair_highbits",
        syscall(SYS_socketpair, (1L << 32) | AF_NETLINK, SOCK_RAW, 0, sv));

    int tcp = socket(AF_INET, SOCK_STREAM, 0);
    int udp = socket(AF_INET, SOCK_DGRAM, 0);
    struct sock_filter accept_all[] = {BPF_STMT(BPF_RET | BPF_K, 0xffff)};
    struct sock_fprog prog = {.len = 1, .filter = accept_all};
    TRY("attach_filter", setsockopt(udp, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof prog));
    TRY("attach_filter_highbits", syscall(SYS_setsockopt, udp, SOL_SOCKET,
                                          (1L << 32) | SO_ATTACH_FILTER, &prog, sizeof prog));
    int bpf_fd = -1;
    TRY("attach_bpf", setsockopt(udp, SOL_SOCKET, SO_ATTACH_BPF, &bpf_fd, sizeof bpf_fd));
    TRY("attach_reuseport_cbpf",
        setsockopt(udp, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &prog, sizeof prog));
    TRY("tcp_ulp", setsockopt(tcp, IPPROTO_TCP, TCP_ULP, "tls", 3));
    TRY("tcp_ulp_highbits",
        syscall(SYS_setsockopt, tcp, (1L << 32) | IPPROTO_TCP, TCP_ULP, "tls", 3));

    int one = 1;
    TRY("socketpair_unix_control", socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
    TRY("reuseaddr_control", setsockopt(tcp, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one));
    TRY("nodelay_control", setsockopt(tcp, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one));
    return 0;
}
