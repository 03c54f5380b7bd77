#ifndef SFKD_CFFTW_SHIM_H
#define SFKD_CFFTW_SHIM_H
#include <fftw3.h>

/* fftwf_version is a char array Swift imports as a tuple; hand it over as a pointer. */
static inline const char *cfftw_version(void) { return fftwf_version; }

#endif
