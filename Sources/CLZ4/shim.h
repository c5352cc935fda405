// liblz4 (Debian: liblz4-dev), used by KlifeProtocol for Kafka's lz4 codec (LZ4 frame format).
#ifndef KLIFE_CLZ4_SHIM_H
#define KLIFE_CLZ4_SHIM_H

#include <lz4frame.h>

#endif
