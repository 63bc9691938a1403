/**
 * @file Shared plumbing of the kernel tests: one WASM instance, blocks placed in its memory between guard
 * words (to catch overruns), optionally 4 bytes off 16-byte alignment (rows of odd width start there),
 * and tolerance checks that name the case and the index of the first mismatch.
 */
import assert from "node:assert/strict";
import { createWasm, type Wasm } from "../../src/wasm/runtime.js";

export const GUARD_WORDS = 8;
const GUARD_BITS = 0x7fc0dead; // a NaN no kernel computes

let shared: Wasm | undefined;
export function wasm(): Wasm {
  shared ??= createWasm(64 << 20);
  return shared;
}

/** A block of `data.length` floats in WASM memory, guarded on both sides, starting `skew` floats past a 64-byte boundary. */
export interface Block {
  ptr: number;
  n: number;
  /** Copy of the block's floats now. */
  read(): Float32Array;
  /** Throws if a guard word was overwritten. */
  checkGuards(label: string): void;
}

export function place(w: Wasm, data: Float32Array, skew = 0): Block {
  const n = data.length;
  const base = w.arena.alloc(GUARD_WORDS + skew + n + GUARD_WORDS);
  const ptr = base + 4 * (GUARD_WORDS + skew);
  const u = () => w.arena.u32(base, GUARD_WORDS + skew + n + GUARD_WORDS);
  const all = u();
  all.fill(GUARD_BITS);
  w.arena.f32(ptr, n).set(data);
  return {
    ptr,
    n,
    read: () => w.arena.f32(ptr, n).slice(),
    checkGuards(label: string) {
      const words = u();
      for (let i = 0; i < GUARD_WORDS + skew; i++) {
        assert.equal(words[i], GUARD_BITS, `${label}: guard word ${i - GUARD_WORDS - skew} before the block overwritten`);
      }
      for (let i = 0; i < GUARD_WORDS; i++) {
        assert.equal(words[GUARD_WORDS + skew + n + i], GUARD_BITS, `${label}: guard word ${i} past the end (n=${n}) overwritten`);
      }
    },
  };
}

/** Run `fn` with the arena scratch released afterwards. */
export function scoped<T>(fn: (w: Wasm) => T): T {
  const w = wasm();
  return w.arena.scoped(() => fn(w));
}

/**
 * |got[i] - want[i]| <= rtol * scale[i] + atol for every i, where scale is |want| unless given (for sums,
 * pass Σ|terms| so cancellation does not make the bound impossibly tight).
 */
export function assertClose(label: string, got: Float32Array, want: Float32Array, rtol = 1e-5, atol = 1e-6, scale?: Float32Array): void {
  assert.equal(got.length, want.length, `${label}: length ${got.length}, expected ${want.length}`);
  for (let i = 0; i < want.length; i++) {
    const s = scale ? scale[i] : Math.abs(want[i]);
    const err = Math.abs(got[i] - want[i]);
    if (!(err <= rtol * s + atol)) {
      assert.fail(`${label}: index ${i}: got ${got[i]}, expected ${want[i]} (|err| ${err.toExponential(2)} > ${(rtol * s + atol).toExponential(2)})`);
    }
  }
}

export function abs(a: Float32Array): Float32Array {
  return a.map(Math.abs);
}
