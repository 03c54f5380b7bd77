#ifndef SFKD_CVECTOR_H
#define SFKD_CVECTOR_H

/* Fused multiply-add on whole vectors. Swift's SIMD addingProduct is a loop over lanes that
   the optimiser vectorises only sometimes (in fastExp it left scalar vfmaddss); this lowers
   to one vfmadd instruction per vector on FMA targets. Swift sees float8 as SIMD8<Float>. */
typedef float sfkd_float8 __attribute__((ext_vector_type(8)));
typedef float sfkd_float16 __attribute__((ext_vector_type(16)));

static inline __attribute__((always_inline)) sfkd_float8 sfkd_fma8(sfkd_float8 a, sfkd_float8 b, sfkd_float8 c) {
    return __builtin_elementwise_fma(a, b, c);
}

static inline __attribute__((always_inline)) sfkd_float16 sfkd_fma16(sfkd_float16 a, sfkd_float16 b, sfkd_float16 c) {
    return __builtin_elementwise_fma(a, b, c);
}

#endif
