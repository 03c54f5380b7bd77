#ifndef SFKD_CDNNL_SHIM_H
#define SFKD_CDNNL_SHIM_H
#include <oneapi/dnnl/dnnl.h>

/* Debian's oneDNN runs on OpenMP (libgomp). sfkd calls it with one OpenMP thread per calling
   thread and splits work across its own threads, so these two calls are all it needs; they
   are declared here rather than through <omp.h>, which belongs to the compiler, not to libgomp. */
int omp_get_max_threads(void);
void omp_set_num_threads(int num_threads);

/* oneDNN's bfloat16 matrix product, C = alpha op(A) op(B) + beta C, row-major as dnnl_sgemm:
   exported by libdnnl 2.x (src/cpu/gemm/gemm.cpp) though its header leaves it out (later
   versions declare it). A and B are bfloat16 bit patterns; C and the accumulation are float32.
   Returns dnnl_unimplemented on a CPU below AVX-512; sfkd calls it only where the CPU has
   AVX512_BF16 or AMX, and tests check it against the float32 product of the rounded inputs. */
dnnl_status_t dnnl_gemm_bf16bf16f32(char transa, char transb, dnnl_dim_t M, dnnl_dim_t N, dnnl_dim_t K,
    float alpha, const uint16_t *A, dnnl_dim_t lda, const uint16_t *B, dnnl_dim_t ldb, float beta, float *C,
    dnnl_dim_t ldc);

#endif
