/*
 * irq_client: interrupt latency through a real mtty card, as a guest's
 * 8250 driver would see it. It negotiates, hands the card an eventfd for
 * INTx, puts port 1 (BAR0) in loopback with the receive interrupt enabled,
 * then times, n times over, the path from sending a posted REGION_WRITE of
 * one byte to the transmit register to its eventfd becoming readable (the
 * byte loops back, the UART raises its interrupt, the server signals the
 * eventfd). Between two timings it reads the byte back and unmasks INTx
 * (INTx is automasked). Prints one key=value line like bench_client.
 *
 *   irq_client -s SOCK [-n iters] [-w warmup]
 */
#include <err.h>
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "vu_irq.h"
#include "vu_wire.h"

/* 16550 registers of a port, one per byte of its I/O BAR. */
#define REG_THR_RBR 0
#define REG_IER 1
#define REG_MCR 4
#define IER_RDI 0x01
#define MCR_OUT2 0x08
#define MCR_LOOP 0x10

static int sock;
static uint16_t next_id = 1;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static void recv_all(void *buf, size_t len)
{
    char *p = buf;
    while (len > 0) {
        ssize_t r = recv(sock, p, len, MSG_WAITALL);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) err(EXIT_FAILURE, "recv");
        if (r == 0) errx(EXIT_FAILURE, "server closed connection");
        p += r;
        len -= (size_t)r;
    }
}

/* Sends header + body (+ one fd); waits for the reply unless posted; returns the reply body length read into out. */
static size_t call(uint16_t cmd, const void *body, size_t blen, int fd, bool posted, void *out, size_t outlen)
{
    struct vu_hdr h = { .msg_id = next_id++, .cmd = cmd, .msg_size = (uint32_t)(sizeof(h) + blen),
                        .flags = VU_F_TYPE_COMMAND | (posted ? VU_F_NO_REPLY : 0) };
    struct iovec iov[2] = { { &h, sizeof(h) }, { (void *)body, blen } };
    char control[CMSG_SPACE(sizeof(int))];
    struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 2 };
    if (fd >= 0) {
        memset(control, 0, sizeof(control));
        mh.msg_control = control;
        mh.msg_controllen = sizeof(control);
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cm), &fd, sizeof(int));
    }
    if (sendmsg(sock, &mh, MSG_NOSIGNAL) != (ssize_t)h.msg_size) err(EXIT_FAILURE, "sendmsg");
    if (posted) return 0;
    struct vu_hdr rh;
    recv_all(&rh, sizeof(rh));
    if (rh.msg_id != h.msg_id || rh.cmd != cmd) errx(EXIT_FAILURE, "reply to %u/%u, expected %u/%u", rh.msg_id, rh.cmd, h.msg_id, cmd);
    if (rh.flags & VU_F_ERROR) errx(EXIT_FAILURE, "command %u failed: %s", cmd, strerror((int)rh.error_no));
    size_t n = rh.msg_size - sizeof(rh);
    char *tmp = malloc(n ? n : 1);
    recv_all(tmp, n);
    if (out != NULL) memcpy(out, tmp, n < outlen ? n : outlen);
    free(tmp);
    return n;
}

static void reg_write(uint8_t reg, uint8_t value, bool posted)
{
    struct { struct vu_region_access a; uint8_t v; } __attribute__((packed)) w = { { reg, 0, 1 }, value };
    call(VU_CMD_REGION_WRITE, &w, sizeof(w), -1, posted, NULL, 0);
}

static uint8_t reg_read(uint8_t reg)
{
    struct vu_region_access a = { reg, 0, 1 };
    uint8_t reply[sizeof(a) + 1];
    call(VU_CMD_REGION_READ, &a, sizeof(a), -1, false, reply, sizeof(reply));
    return reply[sizeof(a)];
}

static void wait_eventfd(int efd)
{
    uint64_t v;
    struct pollfd p = { .fd = efd, .events = POLLIN };
    for (;;) {
        int r = poll(&p, 1, 5000);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) errx(EXIT_FAILURE, "no interrupt within 5 s");
        break;
    }
    if (read(efd, &v, sizeof(v)) != sizeof(v)) err(EXIT_FAILURE, "read eventfd");
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char *argv[])
{
    const char *path = NULL;
    long n = 20000, warm = 1000;
    int opt;
    while ((opt = getopt(argc, argv, "s:n:w:")) != -1) {
        switch (opt) {
        case 's': path = optarg; break;
        case 'n': n = strtol(optarg, NULL, 0); break;
        case 'w': warm = strtol(optarg, NULL, 0); break;
        default: errx(EXIT_FAILURE, "usage: %s -s SOCK [-n iters] [-w warmup]", argv[0]);
        }
    }
    if (path == NULL || n <= 0) errx(EXIT_FAILURE, "need -s SOCK and n > 0");
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    sock = socket(AF_UNIX, SOCK_STREAM, 0);
    if (sock < 0 || connect(sock, (struct sockaddr *)&sa, sizeof(sa)) < 0) err(EXIT_FAILURE, "connect %s", path);

    static const char caps[] = "{\"capabilities\":{\"max_msg_fds\":8,\"max_data_xfer_size\":1048576}}";
    struct { struct vu_version v; char j[sizeof(caps)]; } __attribute__((packed)) ver = { { 0, 2 }, {0} };
    memcpy(ver.j, caps, sizeof(caps));
    call(VU_CMD_VERSION, &ver, sizeof(ver), -1, false, NULL, 0);

    int efd = eventfd(0, EFD_CLOEXEC);
    if (efd < 0) err(EXIT_FAILURE, "eventfd");
    struct irq_set trig = { sizeof(trig), IRQ_DATA_EVENTFD | IRQ_ACTION_TRIGGER, IRQ_INTX, 0, 1 };
    call(CMD_SET_IRQS, &trig, sizeof(trig), efd, false, NULL, 0);
    struct irq_set unmask = { sizeof(unmask), IRQ_DATA_NONE | IRQ_ACTION_UNMASK, IRQ_INTX, 0, 1 };

    reg_write(REG_MCR, MCR_LOOP | MCR_OUT2, false);
    reg_write(REG_IER, IER_RDI, false);

    uint32_t *lat = malloc(sizeof(*lat) * (size_t)n);
    if (lat == NULL) err(EXIT_FAILURE, "malloc");
    uint64_t t0 = now_ns();
    for (long i = -warm; i < n; i++) {
        uint64_t s = now_ns();
        reg_write(REG_THR_RBR, (uint8_t)i, true);
        wait_eventfd(efd);
        uint64_t e = now_ns();
        if ((uint8_t)reg_read(REG_THR_RBR) != (uint8_t)i) errx(EXIT_FAILURE, "the byte did not loop back");
        call(CMD_SET_IRQS, &unmask, sizeof(unmask), -1, false, NULL, 0);
        if (i >= 0) lat[i] = (uint32_t)(e - s);
        else t0 = now_ns();
    }
    uint64_t t1 = now_ns();
    qsort(lat, (size_t)n, sizeof(*lat), cmp_u32);
    printf("tag=irq op=intx n=%ld median_us=%.2f p90_us=%.2f p99_us=%.2f min_us=%.2f cycles_s=%.0f\n", n,
           lat[n / 2] / 1e3, lat[n * 9 / 10] / 1e3, lat[n * 99 / 100] / 1e3, lat[0] / 1e3, n / ((t1 - t0) / 1e9));
    return 0;
}
