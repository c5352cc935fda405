// zlib (Debian: zlib1g-dev), used by KlifeProtocol for Kafka's gzip codec.
#ifndef KLIFE_CZLIB_SHIM_H
#define KLIFE_CZLIB_SHIM_H

#include <zlib.h>

// deflateInit2/inflateInit2 are macros Swift cannot call; these wrap them.

/// A deflate stream that writes an RFC 1952 gzip wrapper (windowBits 15 + 16).
static inline int klife_deflate_init_gzip(z_stream *stream, int level) {
    return deflateInit2(stream, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
}

/// An inflate stream that accepts both gzip and zlib wrappers (windowBits 15 + 32).
static inline int klife_inflate_init_auto(z_stream *stream) {
    return inflateInit2(stream, 15 + 32);
}

#endif
