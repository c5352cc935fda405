// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78).
// Hardware paths, chosen once at runtime: buffers of 256 bytes and more folded 256 bytes at a
// time with AVX-512 carry-less multiplication where the CPU has it; otherwise (and for the
// tail) the SSE4.2 crc32 instruction, 8 bytes per step in three interleaved streams.
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
static uint32_t crc32c_streams(uint32_t crc, const void *data, size_t len) {
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

// ---- Folding with carry-less multiplication (AVX-512 VPCLMULQDQ) ----
//
// Bits are reflected: a 64-bit lane holds x^63 in bit 0, and a 16-byte chunk R is
// R_lo * x^64 + R_hi (its first eight bytes are the higher degrees). The carry-less product of
// two such lanes, read as 128 reflected bits, is x * A * B. So moving a chunk T bits further
// down the message (multiplying it by x^T, modulo P) is
//     clmul(R_lo, x^(T+63) mod P) ^ clmul(R_hi, x^(T-1) mod P),
// a value of at most 96 bits aligned with the chunk T bits later, which is XORed into it.
// Once everything is folded into the last 16-byte chunk, two crc32 instructions reduce it to
// the CRC state: crc32(crc32(0, R_lo), R_hi) = R * x^32 mod P. The constants are computed
// once from the polynomial rather than written out.

/// x^n mod P as a reflected 64-bit lane (bit 63 - d holds the coefficient of x^d).
static uint64_t xpow_mod_lane(unsigned n) {
    uint64_t r = 1; // normal bit order: bit d is x^d
    for (unsigned i = 0; i < n; i++) {
        r <<= 1;
        if (r & (1ull << 32)) r ^= (1ull << 32) | 0x1EDC6F41u;
    }
    uint64_t lane = 0;
    for (int d = 0; d < 32; d++)
        if (r & (1ull << d)) lane |= 1ull << (63 - d);
    return lane;
}

/// The two constants that move a 16-byte chunk `bytes` further: {low lane, high lane}.
typedef struct { uint64_t lo, hi; } fold_constants;

static fold_constants fold_by(unsigned bytes) {
    fold_constants k = { xpow_mod_lane(8 * bytes + 63), xpow_mod_lane(8 * bytes - 1) };
    return k;
}

enum { FOLD_16, FOLD_32, FOLD_48, FOLD_64, FOLD_128, FOLD_192, FOLD_256, FOLD_COUNT };
static fold_constants folds[FOLD_COUNT];
static pthread_once_t folds_once = PTHREAD_ONCE_INIT;

static void build_folds(void) {
    static const unsigned distances[FOLD_COUNT] = { 16, 32, 48, 64, 128, 192, 256 };
    for (int i = 0; i < FOLD_COUNT; i++) folds[i] = fold_by(distances[i]);
}

#if defined(__clang__) || defined(__GNUC__)
#include <immintrin.h>
#define FOLD_TARGET __attribute__((target("avx512f,avx512vl,vpclmulqdq,pclmul,sse4.2")))

FOLD_TARGET static inline __m128i fold128(__m128i r, fold_constants k) {
    __m128i c = _mm_set_epi64x((long long)k.hi, (long long)k.lo);
    return _mm_xor_si128(_mm_clmulepi64_si128(r, c, 0x00), _mm_clmulepi64_si128(r, c, 0x11));
}

FOLD_TARGET static inline __m512i fold512(__m512i r, fold_constants k) {
    __m512i c = _mm512_broadcast_i32x4(_mm_set_epi64x((long long)k.hi, (long long)k.lo));
    return _mm512_xor_si512(_mm512_clmulepi64_epi128(r, c, 0x00), _mm512_clmulepi64_epi128(r, c, 0x11));
}

/// At least 256 bytes: four 64-byte accumulators folded 256 bytes at a time, then merged
/// into one 16-byte chunk, then 16 bytes at a time, then the crc32 instruction for the rest.
FOLD_TARGET static uint32_t crc32c_fold(uint32_t crc, const void *data, size_t len) {
    const uint8_t *p = (const uint8_t *)data;
    __m512i first = _mm512_zextsi128_si512(_mm_cvtsi32_si128((int)~crc));
    __m512i a0 = _mm512_xor_si512(_mm512_loadu_si512(p), first);
    __m512i a1 = _mm512_loadu_si512(p + 64);
    __m512i a2 = _mm512_loadu_si512(p + 128);
    __m512i a3 = _mm512_loadu_si512(p + 192);
    p += 256;
    len -= 256;
    const fold_constants k256 = folds[FOLD_256];
    while (len >= 256) {
        a0 = _mm512_xor_si512(fold512(a0, k256), _mm512_loadu_si512(p));
        a1 = _mm512_xor_si512(fold512(a1, k256), _mm512_loadu_si512(p + 64));
        a2 = _mm512_xor_si512(fold512(a2, k256), _mm512_loadu_si512(p + 128));
        a3 = _mm512_xor_si512(fold512(a3, k256), _mm512_loadu_si512(p + 192));
        p += 256;
        len -= 256;
    }
    // The four accumulators onto the last one's position, then its four lanes onto the last.
    __m512i a = _mm512_xor_si512(_mm512_xor_si512(fold512(a0, folds[FOLD_192]), fold512(a1, folds[FOLD_128])),
                                 _mm512_xor_si512(fold512(a2, folds[FOLD_64]), a3));
    __m128i r = _mm_xor_si128(_mm_xor_si128(fold128(_mm512_extracti32x4_epi32(a, 0), folds[FOLD_48]),
                                            fold128(_mm512_extracti32x4_epi32(a, 1), folds[FOLD_32])),
                              _mm_xor_si128(fold128(_mm512_extracti32x4_epi32(a, 2), folds[FOLD_16]),
                                            _mm512_extracti32x4_epi32(a, 3)));
    while (len >= 16) {
        r = _mm_xor_si128(fold128(r, folds[FOLD_16]), _mm_loadu_si128((const __m128i *)p));
        p += 16;
        len -= 16;
    }
    uint64_t c = _mm_crc32_u64(0, (uint64_t)_mm_cvtsi128_si64(r));
    c = _mm_crc32_u64(c, (uint64_t)_mm_extract_epi64(r, 1));
    return crc32c_streams(~(uint32_t)c, p, len);
}
#endif

static int hw_state = -1; // -1 unknown, 0 no, 1 yes
static int fold_state = -1;

int klife_crc32c_is_hardware(void) {
    int s = __atomic_load_n(&hw_state, __ATOMIC_RELAXED);
    if (s < 0) {
        __builtin_cpu_init();
        s = __builtin_cpu_supports("sse4.2") ? 1 : 0;
        __atomic_store_n(&hw_state, s, __ATOMIC_RELAXED);
    }
    return s;
}

int klife_crc32c_folds(void) {
    int s = __atomic_load_n(&fold_state, __ATOMIC_ACQUIRE);
    if (s < 0) {
        __builtin_cpu_init();
        s = klife_crc32c_is_hardware() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
            __builtin_cpu_supports("vpclmulqdq") && __builtin_cpu_supports("pclmul");
        if (s) pthread_once(&folds_once, build_folds);
        __atomic_store_n(&fold_state, s, __ATOMIC_RELEASE);
    }
    return s;
}

uint32_t klife_crc32c_streams(uint32_t crc, const void *data, size_t len) {
    if (!klife_crc32c_is_hardware()) return klife_crc32c_software(crc, data, len);
    return crc32c_streams(crc, data, len);
}

uint32_t klife_crc32c(uint32_t crc, const void *data, size_t len) {
    if (len >= 256 && klife_crc32c_folds()) return crc32c_fold(crc, data, len);
    if (klife_crc32c_is_hardware()) return crc32c_streams(crc, data, len);
    return klife_crc32c_software(crc, data, len);
}
#else
int klife_crc32c_is_hardware(void) { return 0; }
int klife_crc32c_folds(void) { return 0; }
uint32_t klife_crc32c_streams(uint32_t crc, const void *data, size_t len) {
    return klife_crc32c_software(crc, data, len);
}
uint32_t klife_crc32c(uint32_t crc, const void *data, size_t len) {
    return klife_crc32c_software(crc, data, len);
}
#endif
