// recvmsg with fd passing: one implementation for recvmsg() and for the
// first read FdWatcher makes on a socket's behalf (its read-ahead).
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

namespace uvfio {

// One nonblocking recvmsg into buf[0, len) that always offers room for
// fds (the kernel would drop them silently otherwise). Their numbers go to
// fds (kMaxFds of room), *nfds of them, CLOEXEC. Returns the bytes read, 0
// at EOF, or -1 with errno: EAGAIN when there is nothing; EMSGSIZE when
// fds were lost (control data truncated; the bytes are gone with them and
// the fds that did come are closed): the stream is out of step, the
// connection must be closed.
ssize_t ReceiveWithFds(int fd, void* buf, size_t len, int* fds, size_t* nfds, int flags = MSG_DONTWAIT);

// Fills buf[0, len) as a blocking recvmsg with MSG_WAITALL would, for at
// most `budget_us` of waiting (SO_RCVTIMEO, counted in scheduler ticks),
// the fd made blocking for the call and nonblocking again after. Stops
// early at fds (in fds/nfds as ReceiveWithFds gives them) and at EOF
// (*eof). Returns the bytes read; when none, -1 with *err set to the
// errno of a failure (0 when the budget ran out or EOF came).
ssize_t ReceiveWait(int fd, void* buf, size_t len, uint32_t budget_us, int* fds, size_t* nfds, bool* eof, int* err);

// Sends head then body as a blocking sendmsg would, in pieces of 256 KiB,
// for at most `budget_us` of waiting (SO_SNDTIMEO, counted in ticks), the
// fd made blocking for the call and nonblocking again after (see
// sendmsgWait). Returns the bytes sent; when none, -1 with *err set to the
// errno of a failure (0 when the budget ran out).
ssize_t SendWait(int fd, const void* head, size_t head_len, const void* body, size_t body_len, uint32_t budget_us, int* err);

// What an EMSGSIZE from ReceiveWithFds means, for the error's sentence.
extern const char kLostFdsDetail[];

}  // namespace uvfio
