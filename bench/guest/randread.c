/*
 * randread DEVICE [-n OPS] [-t SECONDS] [-b BYTES] [-j JOBS] [-s SEED]
 *
 * 4 KiB random reads with O_DIRECT from a block device, for the guest of
 * bench/virtio-blk-guest.sh (busybox has no fio). JOBS processes each keep
 * one read in flight (queue depth JOBS); offsets are block-aligned and drawn
 * from a fixed-seed xorshift, so every run reads the same blocks. Stops after
 * OPS reads in all or SECONDS, whichever comes first, and prints one line:
 *   RANDREAD dev=DEVICE bs=B jobs=J ops=N secs=S iops=I
 * Built static by the bench (gcc -static), since the guest has no libc.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t xorshift(uint64_t *s) {
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

int main(int argc, char **argv) {
    long ops = 20000, bs = 4096, jobs = 1;
    double secs = 10;
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    int c;
    while ((c = getopt(argc, argv, "n:t:b:j:s:")) != -1) {
        switch (c) {
        case 'n': ops = atol(optarg); break;
        case 't': secs = atof(optarg); break;
        case 'b': bs = atol(optarg); break;
        case 'j': jobs = atol(optarg); break;
        case 's': seed = strtoull(optarg, NULL, 0); break;
        default: fprintf(stderr, "usage: randread DEVICE [-n OPS] [-t SECONDS] [-b BYTES] [-j JOBS] [-s SEED]\n"); return 2;
        }
    }
    if (optind != argc - 1 || ops < 1 || bs < 512 || bs % 512 || jobs < 1 || jobs > 64 || secs <= 0) {
        fprintf(stderr, "randread: bad arguments\n");
        return 2;
    }
    const char *dev = argv[optind];
    int fd = open(dev, O_RDONLY | O_DIRECT);
    if (fd < 0) { fprintf(stderr, "randread: open %s: %s\n", dev, strerror(errno)); return 1; }
    uint64_t size = 0;
    if (ioctl(fd, BLKGETSIZE64, &size) < 0 || size < (uint64_t)bs) {
        fprintf(stderr, "randread: %s: no size\n", dev);
        return 1;
    }
    uint64_t blocks = size / bs;
    /* Shared counters: one slot per job, summed by the parent. */
    long *done = mmap(NULL, sizeof(long) * jobs, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (done == MAP_FAILED) { perror("randread: mmap"); return 1; }
    long quota = (ops + jobs - 1) / jobs;
    double t0 = now(), deadline = t0 + secs;
    for (long j = 0; j < jobs; j++) {
        pid_t pid = fork();
        if (pid < 0) { perror("randread: fork"); return 1; }
        if (pid > 0) continue;
        void *buf;
        if (posix_memalign(&buf, 4096, bs)) _exit(1);
        uint64_t s = seed + (uint64_t)j * 0x2545f4914f6cdd1dull;
        for (long i = 0; i < quota; i++) {
            off_t off = (off_t)(xorshift(&s) % blocks) * bs;
            if (pread(fd, buf, bs, off) != bs) { fprintf(stderr, "randread: pread at %lld: %s\n", (long long)off, strerror(errno)); _exit(1); }
            done[j]++;
            if ((i & 63) == 63 && now() > deadline) break;
        }
        _exit(0);
    }
    int failed = 0, st;
    while (wait(&st) > 0) failed |= !WIFEXITED(st) || WEXITSTATUS(st) != 0;
    double t = now() - t0;
    long total = 0;
    for (long j = 0; j < jobs; j++) total += done[j];
    printf("RANDREAD dev=%s bs=%ld jobs=%ld ops=%ld secs=%.3f iops=%.0f\n", dev, bs, jobs, total, t, total / t);
    return failed;
}
