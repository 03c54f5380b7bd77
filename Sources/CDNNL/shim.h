#ifndef SFKD_CDNNL_SHIM_H
#define SFKD_CDNNL_SHIM_H
#include <oneapi/dnnl/dnnl.h>

/* Debian's oneDNN runs on OpenMP (libgomp). sfkd calls it with one OpenMP thread per calling
   thread and splits work across its own threads, so these two calls are all it needs; they
   are declared here rather than through <omp.h>, which belongs to the compiler, not to libgomp. */
int omp_get_max_threads(void);
void omp_set_num_threads(int num_threads);

#endif
