/**
 * @file A llama2.c legacy checkpoint (.bin) as a WeightFile, in Node: positioned reads of the file. The layout,
 * its checks and the tensor readers are platform-free in ./llama2c-weights.ts.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { FormatError } from "../errors.js";
import type { WeightFile } from "./weight-file.js";
import { llama2cWeights } from "./llama2c-weights.js";

export { LLAMA2C_HEADER_BYTES, llama2cFileBytes, llama2cLayerBlocks, parseLlama2cHeader } from "./llama2c-weights.js";

/** Open a legacy llama2.c checkpoint as a WeightFile (header checked against the file size; tensors read on demand). */
export function openLlama2cWeights(file: string): WeightFile {
  const name = path.basename(file);
  const fd = fs.openSync(file, "r");
  try {
    return llama2cWeights(file, fs.fstatSync(fd).size, (dst, pos) => {
      let done = 0;
      while (done < dst.length) {
        const r = fs.readSync(fd, dst, done, Math.min(dst.length - done, 1 << 30), pos + done);
        if (r <= 0) throw new FormatError(name, `unexpected end of file at byte ${pos + done}`);
        done += r;
      }
    }, () => fs.closeSync(fd));
  } catch (e) {
    fs.closeSync(fd);
    throw e;
  }
}
