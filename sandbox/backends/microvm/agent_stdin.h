/* Interactive stdin (included by agent_run.h): STDIN frames from the host are relayed into
 * the program's stdin pipe as they come, an empty one meaning EOF. Nothing blocks: bytes the
 * program has not read yet wait here, and past 1 MiB of them the channel is not read, so the
 * host's writes wait instead (backpressure, as a pipe gives). */
#define RELAY_HIGH (1u << 20)

struct relay {
    int pipe_w;  /* -1 once closed */
    int eof;     /* the host sent EOF, or went away */
    uint8_t *rx, *tx;
    size_t rx_len, tx_len, rx_cap, tx_cap;
};

static void buf_add(uint8_t **b, size_t *len, size_t *cap, const void *p, size_t n) {
    if (*len + n > *cap) {
        *cap = (*len + n) * 2;
        *b = realloc(*b, *cap);
        if (!*b) fail("stdin relay: realloc: out of memory");
    }
    memcpy(*b + *len, p, n);
    *len += n;
}

static void buf_drop(uint8_t *b, size_t *len, size_t n) {
    memmove(b, b + n, *len - n);
    *len -= n;
}

static void relay_parse(struct relay *r) {
    for (;;) {
        size_t at = 0;
        while (at + 4 <= r->rx_len && memcmp(r->rx + at, MAGIC, 4)) at++;
        if (at + 4 > r->rx_len) at = r->rx_len > 3 ? r->rx_len - 3 : 0;  /* keep a split magic */
        buf_drop(r->rx, &r->rx_len, at);
        if (r->rx_len < 9) return;
        uint32_t len, crc;
        memcpy(&len, r->rx + 5, 4);
        if (len > MAX_FRAME) { buf_drop(r->rx, &r->rx_len, 1); continue; }
        if (r->rx_len < 9 + (size_t)len + 4) return;
        memcpy(&crc, r->rx + 9 + len, 4);
        if (crc_update(crc_update(0, r->rx + 4, 5), r->rx + 9, len) != crc) {
            buf_drop(r->rx, &r->rx_len, 1);
            continue;
        }
        if (r->rx[4] == T_STDIN && !len) r->eof = 1;
        else if (r->rx[4] == T_STDIN && r->pipe_w >= 0) buf_add(&r->tx, &r->tx_len, &r->tx_cap, r->rx + 9, len);
        buf_drop(r->rx, &r->rx_len, 9 + (size_t)len + 4);
    }
}

static void relay_read(struct relay *r) {
    uint8_t buf[65536];
    ssize_t n = read(chan, buf, sizeof buf);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
    if (n <= 0) { r->eof = 1; return; }
    buf_add(&r->rx, &r->rx_len, &r->rx_cap, buf, (size_t)n);
    relay_parse(r);
}

static void relay_close(struct relay *r) {
    if (r->pipe_w >= 0) close(r->pipe_w);
    r->pipe_w = -1;
    r->tx_len = 0;
}

static void relay_write(struct relay *r) {
    if (r->pipe_w >= 0 && r->tx_len) {
        ssize_t n = write(r->pipe_w, r->tx, r->tx_len);
        if (n > 0) buf_drop(r->tx, &r->tx_len, (size_t)n);
        else if (n < 0 && errno != EAGAIN && errno != EINTR) relay_close(r);  /* EPIPE */
    }
    if (r->eof && !r->tx_len) relay_close(r);
}
