#pragma once
// NPS_HOST_DEVICE marks the per-element math that the CPU loops and the CUDA kernels share: compiled as
// plain inline C++ by the host compiler, and for both sides by nvcc.
#if defined(__CUDACC__)
#define NPS_HOST_DEVICE __host__ __device__
#else
#define NPS_HOST_DEVICE
#endif
