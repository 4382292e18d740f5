#pragma once
// NPS_HOST_DEVICE marks the per-element math that the CPU loops and the CUDA kernels share: compiled as
// plain inline C++ by the host compiler, and for both sides by nvcc.
#if defined(__CUDACC__)
#define NPS_HOST_DEVICE __host__ __device__
#else
#define NPS_HOST_DEVICE
#endif

// NPS_INLINED marks the steps of the PatchMatch inner loop: always inlined, so that a caller compiled for
// a wider instruction set (the CPU's AVX2 build of the line walk) compiles them for that set too.
#if defined(__CUDACC__)
#define NPS_INLINED __forceinline__
#elif defined(__GNUC__)
#define NPS_INLINED inline __attribute__((always_inline))
#else
#define NPS_INLINED inline
#endif
