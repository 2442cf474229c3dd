/* Raw IP sockets (spoofing, sniffing), SOCK_PACKET and ICMP "ping" sockets. A plain TCP
 * socket is the control: it must still be allowed. */
#include "hostile.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

int main(void) {
    setup();
    TRY("raw_icmp", socket(AF_INET, SOCK_RAW, IPPROTO_ICMP));
    TRY("raw_ip", socket(AF_INET, SOCK_RAW, IPPROTO_RAW));
    TRY("raw_tcp_nonblock", socket(AF_INET, SOCK_RAW | SOCK_NONBLOCK, IPPROTO_TCP));
    TRY("raw_icmpv6", socket(AF_INET6, SOCK_RAW, IPPROTO_ICMPV6));
    TRY("sock_packet", socket(AF_INET, SOCK_PACKET, htons(0x0003)));
    TRY("ping_socket", socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP));
    TRY("raw_highbits", syscall(SYS_socket, (1L << 32) | AF_INET, SOCK_RAW, IPPROTO_RAW));
    TRY("tcp_control", socket(AF_INET, SOCK_STREAM, 0));
    return 0;
}
