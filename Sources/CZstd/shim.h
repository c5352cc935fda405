// libzstd (Debian: libzstd-dev), used by KlifeProtocol for Kafka's zstd codec.
#ifndef KLIFE_CZSTD_SHIM_H
#define KLIFE_CZSTD_SHIM_H

#include <zstd.h>
#include <zstd_errors.h>

#endif
