// libsnappy (Debian: libsnappy-dev) through its C API, used by KlifeProtocol for Kafka's snappy codec.
#ifndef KLIFE_CSNAPPY_SHIM_H
#define KLIFE_CSNAPPY_SHIM_H

#include <snappy-c.h>

#endif
