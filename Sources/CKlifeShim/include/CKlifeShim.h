// Small C helpers for things Swift cannot reach directly: macro constants,
// CPU_SET-based affinity, nanosecond epoll waits, and a hardware CRC-32C.
#ifndef CKLIFE_SHIM_H
#define CKLIFE_SHIM_H

#include <stdint.h>
#include <stddef.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <netdb.h>
#include <sys/prctl.h>

// ---- CRC-32C (Castagnoli), as used by Kafka RecordBatch v2 ----

/// Continues a CRC-32C over `len` bytes. Start with crc = 0; the result is final
/// (the pre/post inversion is handled inside). Uses SSE4.2 when the CPU has it.
uint32_t klife_crc32c(uint32_t crc, const void *data, size_t len);

/// 1 when the hardware (SSE4.2) path is in use, 0 for the table fallback.
int klife_crc32c_is_hardware(void);

/// The portable table-driven CRC-32C, exposed so tests can compare every path.
uint32_t klife_crc32c_software(uint32_t crc, const void *data, size_t len);

/// 1 when buffers of 256 bytes and more are folded with AVX-512 carry-less multiplication
/// (VPCLMULQDQ), 0 when they take the crc32 instruction.
int klife_crc32c_folds(void);

/// The crc32-instruction path alone (three interleaved streams; the table without SSE4.2),
/// exposed so tests can compare it with the folding path.
uint32_t klife_crc32c_streams(uint32_t crc, const void *data, size_t len);

// ---- Cache hints ----

/// Asks the CPU to bring the cache line holding `address` in for reading (a hint: no fault,
/// no effect on what a program computes).
static inline void klife_prefetch(const void *address) { __builtin_prefetch(address, 0, 3); }

// ---- ThreadSanitizer annotations for locks it cannot see ----
// Swift's Mutex hands a contended lock over inside uninstrumented standard-library code, so
// ThreadSanitizer misses the acquire/release. scripts/sanitize.sh defines KLIFE_TSAN for TSan
// builds; everywhere else these are empty and compile to nothing.
#ifdef KLIFE_TSAN
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
static inline void klife_tsan_acquire(void *addr) { __tsan_acquire(addr); }
static inline void klife_tsan_release(void *addr) { __tsan_release(addr); }
#else
static inline void klife_tsan_acquire(void *addr) { (void)addr; }
static inline void klife_tsan_release(void *addr) { (void)addr; }
#endif

// ---- epoll / eventfd / timerfd constants (some are enums or macros in glibc) ----
static inline uint32_t klife_epollin(void) { return EPOLLIN; }
static inline uint32_t klife_epollout(void) { return EPOLLOUT; }
static inline uint32_t klife_epollerr(void) { return EPOLLERR; }
static inline uint32_t klife_epollhup(void) { return EPOLLHUP; }
static inline uint32_t klife_epollrdhup(void) { return EPOLLRDHUP; }
static inline uint32_t klife_epollet(void) { return EPOLLET; }
static inline int klife_efd_nonblock_cloexec(void) { return EFD_NONBLOCK | EFD_CLOEXEC; }
static inline int klife_tfd_nonblock_cloexec(void) { return TFD_NONBLOCK | TFD_CLOEXEC; }
static inline int klife_sock_nonblock_cloexec(void) { return SOCK_NONBLOCK | SOCK_CLOEXEC; }

/// epoll_event is packed on x86_64, so Swift cannot always address its fields safely.
static inline uint64_t klife_epoll_event_data(const struct epoll_event *ev) { return ev->data.u64; }
static inline uint32_t klife_epoll_event_events(const struct epoll_event *ev) { return ev->events; }
static inline void klife_epoll_event_set(struct epoll_event *ev, uint32_t events, uint64_t data) {
    ev->events = events;
    ev->data.u64 = data;
}

// ---- waiting ----

/// `epoll_wait` with a timeout in nanoseconds (-1: forever), through `epoll_pwait2`; on a
/// kernel without it (before 5.11), `epoll_wait` with the timeout rounded up to milliseconds.
int klife_epoll_wait_ns(int epfd, struct epoll_event *events, int capacity, int64_t timeout_ns);

/// 1 while waits take nanosecond timeouts (0 once `epoll_pwait2` was found missing).
int klife_epoll_waits_precisely(void);

// ---- CPU affinity ----

/// Pins the calling thread to the given CPU ids. Returns 0 or an errno value.
int klife_pin_current_thread(const int *cpus, int count);

/// Number of CPUs configured on this machine.
int klife_cpu_count(void);

// ---- timer slack (prctl is variadic, which Swift cannot call) ----

/// Sets how late the kernel may wake the calling thread from a timed sleep, in nanoseconds
/// (PR_SET_TIMERSLACK; the default is 50 us). Returns 0, or -1 with errno set.
static inline int klife_set_current_timer_slack(unsigned long nanoseconds) {
    return prctl(PR_SET_TIMERSLACK, nanoseconds, 0UL, 0UL, 0UL);
}

#endif
