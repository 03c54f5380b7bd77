#ifndef SFKD_CZLIB_SHIM_H
#define SFKD_CZLIB_SHIM_H
#include <zlib.h>

static inline const char *czlib_version(void) { return zlibVersion(); }

#endif
