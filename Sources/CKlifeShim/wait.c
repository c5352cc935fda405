// Waiting on an epoll set with a timeout in nanoseconds.
#define _GNU_SOURCE
#include <errno.h>
#include <stdatomic.h>
#include <time.h>
#include <sys/epoll.h>
#include "CKlifeShim.h"

// 1 once epoll_pwait2 failed with ENOSYS (a kernel before 5.11): millisecond waits from then on.
static atomic_int klife_no_pwait2;

int klife_epoll_wait_ns(int epfd, struct epoll_event *events, int capacity, int64_t timeout_ns) {
    if (timeout_ns < 0) return epoll_wait(epfd, events, capacity, -1);
    if (!atomic_load_explicit(&klife_no_pwait2, memory_order_relaxed)) {
        struct timespec timeout = { .tv_sec = timeout_ns / 1000000000, .tv_nsec = timeout_ns % 1000000000 };
        int n = epoll_pwait2(epfd, events, capacity, &timeout, NULL);
        if (n >= 0 || errno != ENOSYS) return n;
        atomic_store_explicit(&klife_no_pwait2, 1, memory_order_relaxed);
    }
    // Rounded up: never wake before the deadline.
    int64_t ms = timeout_ns / 1000000 + (timeout_ns % 1000000 != 0);
    return epoll_wait(epfd, events, capacity, ms > 0x7fffffff ? 0x7fffffff : (int)ms);
}

int klife_epoll_waits_precisely(void) {
    return !atomic_load_explicit(&klife_no_pwait2, memory_order_relaxed);
}
