// libFuzzer's library entry point (declared in compiler-rt's FuzzerInterface.h). The
// symbol comes from the runtime that `-sanitize=fuzzer` links; nothing here is compiled.
#ifndef KLIFE_FUZZ_LIBFUZZER_H
#define KLIFE_FUZZ_LIBFUZZER_H

#include <stddef.h>
#include <stdint.h>

/// Runs libFuzzer as its own `main` would: parses the flags in `argv`, then runs `callback`
/// on every input. libFuzzer never passes a null `data`, even for an empty input.
int LLVMFuzzerRunDriver(int *_Nonnull argc, char *_Nullable *_Nullable *_Nonnull argv,
                        int (*_Nonnull callback)(const uint8_t *_Nonnull data, size_t size));

#endif
