#ifndef SFKD_CBLAS_SHIM_H
#define SFKD_CBLAS_SHIM_H
#include <cblas.h>

/* OpenBLAS's runtime queries; declared in its cblas.h, repeated here so the module does
   not depend on which cblas.h variant pkg-config finds first. */
char *openblas_get_config(void);
char *openblas_get_corename(void);
int openblas_get_num_threads(void);
void openblas_set_num_threads(int num_threads);

#endif
