/** Paths of the real model and data under ../shared (beside the repository; CI has it there too). */
import { fileURLToPath } from "node:url";
import path from "node:path";

const root = fileURLToPath(new URL("../../", import.meta.url));
export const SHARED = path.resolve(root, "..", "shared");
export const STORIES_BIN = path.join(SHARED, "models/stories260K/stories260K.bin");
export const STORIES_TOK = path.join(SHARED, "models/stories260K/tok512.bin");
export const STORIES_HF = path.join(SHARED, "models/stories260K-hf");
export const TINY_VALID = path.join(SHARED, "data/tinystories-valid-head/tinystories_valid_head.txt");
export const TINY_TRAIN = path.join(SHARED, "data/tinystories-train-head/tinystories_train_head.txt");
export const REPO = root;
/** The CLI from the sources (through tsx), as edited; the compiled bin/wasprune.js is tested from the packed package (test/package). */
export const CLI = path.join(root, "bin/wasprune-dev.js");

/** The greedy continuation quoted in ../shared/models/stories260K/README.md (llama2.c run.c output). */
export const GREEDY_200 = `Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball. She wanted to play with it, but it was too high.
Lily's mom said, "Lily, let's go to the park." Lily was sad and didn't know what to do. She said, "I want to play with your ball, but I can't find it."
Lily was sad and didn't know what to do. She said, "I'm sorry, Lily. I didn't know what to do."
Lily didn't want to help her mom, so she`;
