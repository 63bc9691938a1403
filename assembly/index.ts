// Entry point of build/kernels.wasm: re-exports every kernel family. One file per op family, named by
// dtype and op (see ../shared/STYLE.md); kernels are pure functions of pointers and sizes.
export function heapBase(): usize {
  return __heap_base;
}
/** 1 in the relaxed-SIMD build (kernels-relaxed.wasm), 0 in the baseline: a module says which build it is. */
export function kernelsRelaxed(): i32 {
  return ASC_FEATURE_RELAXED_SIMD ? 1 : 0;
}
export * from "./gemm";
export * from "./gemv";
export * from "./stream";
export * from "./f32-elementwise";
export * from "./f32-attention";
export * from "./f32-gram";
export * from "./f32-cholesky";
export * from "./f32-obs";
export { f32_quant_params, f32_quant_rows } from "./f32-quant";
export * from "./f32-fista";
export * from "./f32-nm";
export * from "./spmm-nm";
export * from "./qgemm";
export * from "./f32-elementwise-backward";
export * from "./f32-attention-backward";
export * from "./f32-loss-backward";
