// SPDX-License-Identifier: Apache-2.0
// HYPERFILE_EXPORT marks the public API: the library is built with hidden
// visibility (-fvisibility=hidden), so only what carries this macro is
// exported from libhyperfile.so. Harmless in a static build and for users.
#pragma once

#if defined(__GNUC__) || defined(__clang__)
#define HYPERFILE_EXPORT [[gnu::visibility("default")]]
#else
#define HYPERFILE_EXPORT
#endif
