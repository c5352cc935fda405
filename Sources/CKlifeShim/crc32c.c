// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78).
// Hardware path: SSE4.2 crc32 instruction, 8 bytes per step, chosen once at runtime.
#include "CKlifeShim.h"
#include <pthread.h>
#include <string.h>

static uint32_t table[8][256];
static int table_ready = 0;

static void build_table(void) {
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        table[0][n] = c;
    }
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = table[0][n];
        for (int k = 1; k < 8; k++) {
            c = table[0][c & 0xff] ^ (c >> 8);
            table[k][n] = c;
        }
    }
    __atomic_store_n(&table_ready, 1, __ATOMIC_RELEASE);
}

uint32_t klife_crc32c_software(uint32_t crc, const void *data, size_t len) {
    if (!__atomic_load_n(&table_ready, __ATOMIC_ACQUIRE)) build_table();
    const uint8_t *p = (const uint8_t *)data;
    uint32_t c = ~crc;
    while (len >= 8) {
        uint64_t word;
        memcpy(&word, p, 8);
        word ^= c;
        c = table[7][word & 0xff] ^ table[6][(word >> 8) & 0xff] ^
            table[5][(word >> 16) & 0xff] ^ table[4][(word >> 24) & 0xff] ^
            table[3][(word >> 32) & 0xff] ^ table[2][(word >> 40) & 0xff] ^
            table[1][(word >> 48) & 0xff] ^ table[0][word >> 56];
        p += 8;
        len -= 8;
    }
    while (len--) c = table[0][(c ^ *p++) & 0xff] ^ (c >> 8);
    return ~c;
}

#if defined(__x86_64__)
#include <nmmintrin.h>

__attribute__((target("sse4.2")))
static uint64_t crc32c_words(uint64_t c, const uint8_t *p, size_t words) {
    for (size_t i = 0; i < words; i++) {
        uint64_t word;
        memcpy(&word, p + 8 * i, 8);
        c = _mm_crc32_u64(c, word);
    }
    return c;
}

// The crc32 instruction takes 3 cycles but a new one can start every cycle: three streams over
// consecutive blocks run in parallel, then merge. Merging needs the state `s` carried over a
// block of zeros (the "shift" of `s` by a block): that is linear in `s`, so it is a lookup per
// byte of `s` in `shift_table`, built once from the instruction itself.
#define STREAM_BLOCK 512
static uint32_t shift_table[4][256];
static pthread_once_t shift_once = PTHREAD_ONCE_INIT;

__attribute__((target("sse4.2")))
static uint32_t shift_by_zeros(uint32_t state) {
    static const uint8_t zeros[STREAM_BLOCK];
    return (uint32_t)crc32c_words(state, zeros, STREAM_BLOCK / 8);
}

static void build_shift_table(void) {
    for (int byte = 0; byte < 4; byte++)
        for (uint32_t v = 0; v < 256; v++) shift_table[byte][v] = shift_by_zeros(v << (8 * byte));
}

static inline uint32_t shift_block(uint32_t s) {
    return shift_table[0][s & 0xff] ^ shift_table[1][(s >> 8) & 0xff] ^ shift_table[2][(s >> 16) & 0xff] ^
           shift_table[3][s >> 24];
}

__attribute__((target("sse4.2")))
static uint32_t crc32c_hw(uint32_t crc, const void *data, size_t len) {
    const uint8_t *p = (const uint8_t *)data;
    uint64_t c = (uint32_t)~crc;
    if (len >= 3 * STREAM_BLOCK) {
        pthread_once(&shift_once, build_shift_table);
        while (len >= 3 * STREAM_BLOCK) {
            uint64_t a = c, b = 0, d = 0;
            for (size_t i = 0; i < STREAM_BLOCK; i += 8) {
                uint64_t wa, wb, wd;
                memcpy(&wa, p + i, 8);
                memcpy(&wb, p + STREAM_BLOCK + i, 8);
                memcpy(&wd, p + 2 * STREAM_BLOCK + i, 8);
                a = _mm_crc32_u64(a, wa);
                b = _mm_crc32_u64(b, wb);
                d = _mm_crc32_u64(d, wd);
            }
            c = shift_block(shift_block((uint32_t)a) ^ (uint32_t)b) ^ (uint32_t)d;
            p += 3 * STREAM_BLOCK;
            len -= 3 * STREAM_BLOCK;
        }
    }
    c = crc32c_words(c, p, len / 8);
    p += len & ~(size_t)7;
    len &= 7;
    uint32_t c32 = (uint32_t)c;
    while (len--) c32 = _mm_crc32_u8(c32, *p++);
    return ~c32;
}

static int hw_state = -1; // -1 unknown, 0 no, 1 yes

int klife_crc32c_is_hardware(void) {
    int s = __atomic_load_n(&hw_state, __ATOMIC_RELAXED);
    if (s < 0) {
        __builtin_cpu_init();
        s = __builtin_cpu_supports("sse4.2") ? 1 : 0;
        __atomic_store_n(&hw_state, s, __ATOMIC_RELAXED);
    }
    return s;
}

uint32_t klife_crc32c(uint32_t crc, const void *data, size_t len) {
    if (klife_crc32c_is_hardware()) return crc32c_hw(crc, data, len);
    return klife_crc32c_software(crc, data, len);
}
#else
int klife_crc32c_is_hardware(void) { return 0; }
uint32_t klife_crc32c(uint32_t crc, const void *data, size_t len) {
    return klife_crc32c_software(crc, data, len);
}
#endif
