import { generate, type GenerateResult } from "../../generate/generate.js";
import { openModel } from "../open-model.js";
import { fmt } from "../format.js";

export interface GenerateCliOptions {
  prompt: string;
  steps: number;
  temperature: number;
  topP: number;
  seed: number;
  json?: boolean;
  tokenizer?: string;
}

export async function generateCommand(modelPath: string, opts: GenerateCliOptions): Promise<GenerateResult> {
  const model = await openModel(modelPath, { tokenizer: opts.tokenizer });
  const r = generate(model, { ...opts, onText: opts.json ? undefined : (s) => process.stdout.write(s) });
  if (opts.json) console.log(JSON.stringify({ model: modelPath, ...opts, ...r }, null, 2));
  else {
    process.stdout.write("\n");
    process.stderr.write(`${renderGenerateSpeed(r)}\n`);
  }
  return r;
}

export function renderGenerateSpeed(r: GenerateResult): string {
  return `achieved tok/s: ${fmt(r.tokensPerSecond, 1)} (${r.generatedTokens} generated after a ${r.promptTokens}-token prompt, ${fmt(r.seconds, 2)} s)`;
}
