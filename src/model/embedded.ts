/**
 * @file The model and text shipped in the repository (and the npm package): karpathy's stories260K
 * (models/stories260K/, MIT, see its README and LICENSE) and an excerpt of TinyStories validation text
 * (data/tinystories-valid-excerpt/, CDLA-Sharing-1.0). They are what `wasprune demo` (`npm start`) runs on
 * when no model is given; `builtin` (./builtin.ts) stays the random model of the unit tests.
 */
import { fileURLToPath } from "node:url";

const root = new URL("../../", import.meta.url);

/** llama2.c checkpoint; its tokenizer tok512.bin is found beside it. */
export const EMBEDDED_MODEL = fileURLToPath(new URL("models/stories260K/stories260K.bin", root));
/** the first 300 paragraphs of TinyStories validation (the paragraphs of the README's perplexities) */
export const EMBEDDED_TEXT = fileURLToPath(new URL("data/tinystories-valid-excerpt/tinystories_valid_excerpt.txt", root));
