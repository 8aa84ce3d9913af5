/*
 * raw_irq_server: the floor for irq_client, "message in, eventfd signalled".
 * The smallest vfio-user server that answers what irq_client sends: VERSION,
 * SET_IRQS (an INTx trigger eventfd passed by SCM_RIGHTS, and unmasks),
 * REGION_READ/WRITE of a few bytes of region 0. A write to offset 0 of
 * region 0 (the UART transmit register irq_client writes) writes 1 to the
 * trigger eventfd, as a device raising its interrupt would; there is no
 * device behind it (no UART, no masking), only 8 bytes of registers that
 * keep what is written, so irq_client reads its byte back. Blocking
 * receives as raw_server: recvmsg(header, with room for fds) + recv(body),
 * then sendmsg(reply), or write(eventfd) for the posted transmit write.
 *
 *   raw_irq_server [-x] SOCK      (-x: exit after the first client leaves)
 */
#include <err.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include "vu_irq.h"
#include "vu_wire.h"

#define NREGS 8 /* a 16550 port's registers, one a byte */
#define REG_THR 0 /* its transmit register */
#define MAX_BODY 4096
#define MAX_FDS 8

static uint8_t regs[NREGS];
static int trigger = -1;

/* Closes every fd a message carried (fds, n), except the one kept. */
static void drop_fds(const int *fds, int n, int keep)
{
    for (int i = 0; i < n; i++)
        if (fds[i] != keep) close(fds[i]);
}

/* Receives exactly len bytes; the fds sent with them land in fds (up to MAX_FDS). False on EOF. */
static bool recv_msg(int fd, void *buf, size_t len, int *fds, int *nfds)
{
    char control[CMSG_SPACE(sizeof(int) * MAX_FDS)];
    char *p = buf;
    *nfds = 0;
    while (len > 0) {
        struct iovec iov = { p, len };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof(control) };
        ssize_t r = recvmsg(fd, &mh, MSG_WAITALL | MSG_CMSG_CLOEXEC);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && errno == ECONNRESET) return false;
        if (r < 0) err(EXIT_FAILURE, "recvmsg");
        if (r == 0) return false;
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm != NULL; cm = CMSG_NXTHDR(&mh, cm)) {
            if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS) continue;
            int n = (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
            for (int i = 0; i < n; i++) {
                int got;
                memcpy(&got, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
                if (*nfds < MAX_FDS) fds[(*nfds)++] = got;
                else close(got);
            }
        }
        p += r;
        len -= (size_t)r;
    }
    return true;
}

static bool recv_all(int fd, void *buf, size_t len)
{
    char *p = buf;
    while (len > 0) {
        ssize_t r = recv(fd, p, len, MSG_WAITALL);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && errno == ECONNRESET) return false;
        if (r < 0) err(EXIT_FAILURE, "recv");
        if (r == 0) return false;
        p += r;
        len -= (size_t)r;
    }
    return true;
}

/* Replies with header + body (none on error), unless the command was posted. Replies are small: one sendmsg. */
static void reply(int fd, const struct vu_hdr *req, const void *body, size_t blen, const void *data, size_t dlen, uint32_t error)
{
    if (req->flags & VU_F_NO_REPLY) return;
    if (error) blen = dlen = 0;
    struct vu_hdr h = { .msg_id = req->msg_id, .cmd = req->cmd, .msg_size = (uint32_t)(sizeof(h) + blen + dlen),
                        .flags = VU_F_TYPE_REPLY | (error ? VU_F_ERROR : 0), .error_no = error };
    struct iovec iov[3] = { { &h, sizeof(h) }, { (void *)body, blen }, { (void *)data, dlen } };
    struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 3 };
    ssize_t r;
    do r = sendmsg(fd, &mh, MSG_NOSIGNAL);
    while (r < 0 && errno == EINTR);
    /* r < 0: the peer is gone, and the next receive says so. */
}

/* The device "raising" INTx: one eventfd write, nothing else. */
static void raise_intx(void)
{
    uint64_t one = 1;
    if (trigger >= 0 && write(trigger, &one, sizeof(one)) != sizeof(one)) err(EXIT_FAILURE, "write eventfd");
}

static void serve(int fd)
{
    static const char caps[] = "{\"capabilities\":{\"max_msg_fds\":8,\"max_data_xfer_size\":1048576}}";
    static char body[MAX_BODY];
    struct vu_hdr h;
    int fds[MAX_FDS], nfds;
    for (;;) {
        if (!recv_msg(fd, &h, sizeof(h), fds, &nfds)) return;
        size_t blen = h.msg_size - sizeof(h);
        if (h.msg_size < sizeof(h) || blen > sizeof(body)) {
            drop_fds(fds, nfds, -1);
            reply(fd, &h, NULL, 0, NULL, 0, EINVAL);
            return;
        }
        if (!recv_all(fd, body, blen)) {
            drop_fds(fds, nfds, -1);
            return;
        }
        int keep = -1;
        switch (h.cmd) {
        case VU_CMD_VERSION: {
            struct { struct vu_version v; char j[sizeof(caps)]; } __attribute__((packed)) v = { { 0, 2 }, { 0 } };
            memcpy(v.j, caps, sizeof(caps));
            reply(fd, &h, &v, sizeof(v), NULL, 0, 0);
            break;
        }
        case CMD_SET_IRQS: {
            struct irq_set s;
            if (blen < sizeof(s)) {
                reply(fd, &h, NULL, 0, NULL, 0, EINVAL);
                break;
            }
            memcpy(&s, body, sizeof(s));
            if (s.index == IRQ_INTX && (s.flags & IRQ_ACTION_TRIGGER) && (s.flags & IRQ_DATA_EVENTFD) && nfds == 1) {
                if (trigger >= 0) close(trigger);
                trigger = keep = fds[0];
            }
            reply(fd, &h, NULL, 0, NULL, 0, 0); /* anything else (unmask, mask): accepted, nothing to do */
            break;
        }
        case VU_CMD_REGION_READ:
        case VU_CMD_REGION_WRITE: {
            struct vu_region_access a;
            bool wr = h.cmd == VU_CMD_REGION_WRITE;
            if (blen < sizeof(a)) {
                reply(fd, &h, NULL, 0, NULL, 0, EINVAL);
                break;
            }
            memcpy(&a, body, sizeof(a));
            if (a.region != 0 || a.offset > NREGS || a.count > NREGS - a.offset || (wr && blen - sizeof(a) != a.count)) {
                reply(fd, &h, NULL, 0, NULL, 0, EINVAL);
                break;
            }
            if (wr) {
                memcpy(regs + a.offset, body + sizeof(a), a.count);
                if (a.offset == REG_THR && a.count > 0) raise_intx();
            }
            reply(fd, &h, &a, sizeof(a), regs + a.offset, wr ? 0 : a.count, 0);
            break;
        }
        default:
            reply(fd, &h, NULL, 0, NULL, 0, EINVAL);
        }
        drop_fds(fds, nfds, keep);
    }
}

int main(int argc, char *argv[])
{
    bool once = false;
    int opt;
    while ((opt = getopt(argc, argv, "x")) != -1) {
        if (opt != 'x') errx(EXIT_FAILURE, "usage: %s [-x] SOCK", argv[0]);
        once = true;
    }
    if (optind >= argc) errx(EXIT_FAILURE, "missing socket path");
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", argv[optind]);
    unlink(sa.sun_path);
    int lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 16) < 0) err(EXIT_FAILURE, "listen %s", sa.sun_path);
    do {
        int fd = accept(lfd, NULL, NULL);
        if (fd < 0 && errno == EINTR) continue;
        if (fd < 0) err(EXIT_FAILURE, "accept");
        serve(fd);
        close(fd);
        if (trigger >= 0) close(trigger); /* a client's eventfd goes with it */
        trigger = -1;
        memset(regs, 0, sizeof(regs));
    } while (!once);
    close(lfd);
    unlink(sa.sun_path);
    return 0;
}
