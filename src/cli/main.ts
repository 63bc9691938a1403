/**
 * @file The wasprune command line. Each command lives in src/cli/commands/; this file only declares options
 * and turns errors into one clear line (stack with --verbose) and a non-zero exit.
 */
import { Command, InvalidArgumentError, Option } from "commander";
import os from "node:os";
import { UsageError, WaspruneError } from "../errors.js";
import { PROTOCOLS } from "../eval/protocol.js";

const program = new Command();

function int(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n)) throw new InvalidArgumentError(`${name} must be an integer, got "${v}"`);
    return n;
  };
}
function num(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isFinite(n)) throw new InvalidArgumentError(`${name} must be a number, got "${v}"`);
    return n;
  };
}

program
  .name("wasprune")
  .description("Post-training pruning of LLaMA-family models and sparse inference on WebAssembly SIMD")
  .option("--verbose", "print stack traces of errors")
  .showHelpAfterError();

/** `--threads N` of every command: worker threads of the pool (src/parallel); 1 runs without a pool. */
const threadsOption = () =>
  new Option("--threads <n>", "worker threads (1 = no worker pool; results are identical for any N)")
    .argParser(int("--threads"))
    .default(os.availableParallelism(), "available cores");

/** `--int-activations` of the inference commands (eval, generate): src/model/load.ts LoadOptions.intActivations. */
const intActivationsOption = () =>
  new Option("--int-activations <bits>", "how the integer kernels round activations: stored (int8 where the checkpoint declares dynamic int8 input activations, W4A8 / W8A8; else int16) | 16 (int16 per block) | 8 (int8 and int4 operators in dense panels, W8A8 / W4A8: int8 per block and i8 dot products, ~1.2x / ~2x faster with relaxed SIMD, coarser)")
    .choices(["stored", "16", "8"]).default("stored");

/** `--weights-dtype` of the inference commands (eval, generate, bench model): src/model/weight-file.ts WeightsOption. */
const weightsDtypeOption = () =>
  new Option("--weights-dtype <d>", "linear weights in memory, packed once at load for the kernels: stored (each tensor's stored dtype: F32 → f32, BF16 → bf16, F16 → f16) | f32 | bf16 | f16 (rounded to nearest even); half precision halves their bytes, the kernels widen in registers and accumulate in f32")
    .choices(["stored", "f32", "bf16", "f16"])
    .default("stored");

/** `--device` of prune, eval, generate and bench kernels (src/gpu/device.ts). */
const deviceOption = () =>
  new Option("--device <d>", "auto (WebGPU if an adapter exists, else WASM with one line) | wasm | webgpu (error without an adapter)")
    .choices(["auto", "wasm", "webgpu"])
    .default("wasm");

const tokenizerOption = new Option("--tokenizer <file>", "tokenizer file (tokenizer.bin, tokenizer.model or tokenizer.json)");

/** `--residency` of the commands that can stream a model a decoder layer at a time (src/model/residency.ts). */
const residencyOption = () =>
  new Option("--residency <r>", "auto (whole in memory when it fits, else a decoder layer at a time) | resident | streamed")
    .choices(["auto", "resident", "streamed"])
    .default("auto");

program
  .command("demo")
  .description("the main job: inspect, generate, prune with every method at 50% and 2:4 compared, the best one generated and compressed")
  .argument("[model]", "a .bin file, a Hugging Face model directory, or 'builtin' (default: the embedded stories260K, models/stories260K)")
  .option("--calib <file>", "calibration text (default: sampled from the dense model)")
  .option("--text <file>", "held-out text for perplexity (default: the embedded TinyStories excerpt, data/tinystories-valid-excerpt)")
  .option("--nsamples <n>", "calibration paragraphs (sampled from the model unless --calib)", int("--nsamples"), 32)
  .addOption(tokenizerOption)
  .addOption(threadsOption())
  .option("--json", "print results as JSON")
  .action(async (model: string | undefined, opts) => {
    const { demoCommand } = await import("./commands/demo.js");
    await demoCommand(model, opts);
  });

/**
 * The perplexity protocol options (src/eval/protocol.ts): bare names on eval, prefixed `--eval-` on the
 * commands whose --eval names a text (prune, bench methods); --ctx is shared.
 */
function protocolOptions(cmd: Command, prefix: "" | "eval-"): Command {
  const flag = (name: string) => `--${prefix}${name}`;
  return cmd
    .addOption(new Option(`${flag("protocol")} <p>`, "paragraphs (each with BOS, truncated at --ctx) | windows (the papers': text tokenized once, non-overlapping --ctx windows, tail dropped)")
      .choices(PROTOCOLS).default("paragraphs"))
    .option(`${flag("paragraphs")} <n>`, "paragraphs: use the first N (default: all)", int(flag("paragraphs")))
    .option(`${flag("stride")} <s>`, "windows: Hugging Face's sliding windows of --ctx advanced by S tokens, scoring only tokens not scored before", int(flag("stride")))
    .option(`${flag("max-windows")} <n>`, "windows: use the first N windows (default: all)", int(flag("max-windows")))
    .option("--ctx <n>", "tokens per paragraph at most, or per window (capped at the model's context)", int("--ctx"), 512);
}

protocolOptions(program
  .command("eval")
  .description("perplexity on a text file: paragraphs (blank-line separated, each with BOS, truncated at --ctx) or --protocol windows")
  .argument("<model>", "a .bin file, a Hugging Face model directory, or 'builtin'")
  .requiredOption("--text <file>", "text file to evaluate on"), "")
  .addOption(tokenizerOption)
  .addOption(weightsDtypeOption())
  .addOption(intActivationsOption())
  .addOption(threadsOption())
  .addOption(deviceOption())
  .addOption(residencyOption())
  .option("--json", "print results as JSON")
  .action(async (model: string, opts) => {
    const { evalCommand } = await import("./commands/eval.js");
    await evalCommand(model, opts);
  });

program
  .command("generate")
  .description("generate text, streamed, then tokens/s")
  .argument("<model>", "a .bin file, a Hugging Face model directory, or 'builtin'")
  .option("--prompt <text>", "prompt", "")
  .option("--steps <n>", "sequence length in tokens, BOS and prompt included (as llama2.c)", int("--steps"), 256)
  .option("--temperature <t>", "0 = greedy", num("--temperature"), 1.0)
  .option("--top-p <p>", "nucleus sampling mass (1 = off)", num("--top-p"), 0.9)
  .option("--seed <s>", "random seed", int("--seed"), 42)
  .addOption(tokenizerOption)
  .addOption(weightsDtypeOption())
  .addOption(intActivationsOption())
  .addOption(threadsOption())
  .addOption(deviceOption())
  .option("--json", "print results as JSON (no streaming)")
  .action(async (model: string, opts) => {
    const { generateCommand } = await import("./commands/generate.js");
    await generateCommand(model, opts);
  });

program
  .command("inspect")
  .description("architecture, shapes, parameter counts, dtypes, and exact zeros / N:M pattern per tensor")
  .argument("<model>", "a .bin file, a Hugging Face model directory, or 'builtin'")
  .addOption(tokenizerOption)
  .addOption(threadsOption())
  .addOption(residencyOption())
  .option("--json", "print results as JSON")
  .action(async (model: string, opts) => {
    const { inspectCommand } = await import("./commands/inspect.js");
    await inspectCommand(model, opts);
  });

protocolOptions(program
  .command("prune")
  .description("prune every linear operator layer by layer (magnitude, wanda, sparsegpt, fista); --structured removes MLP channels and k/v groups")
  .argument("<model>", "a .bin file, a Hugging Face model directory, or 'builtin'")
  .requiredOption("--out <dir>", "output model directory (or a path ending in .bin for llama2.c)")
  .option("--method <name>", "magnitude | wanda | sparsegpt | fista (--structured: activation (default) | magnitude | taylor | mini-llm | mini-llm-exact | gate-hybrid | gate-hybrid-exact)", "fista")
  .option("--sparsity <s>", "fraction in [0,1) (unstructured) or N:M (N kept of every M), e.g. 0.5, 2:4", "0.5")
  .option("--calib <file>", "calibration text (default: text sampled from the dense model)")
  .option("--nsamples <n>", "calibration samples (paragraphs, or windows)", int("--nsamples"), 128)
  .option("--calib-protocol <p>", "paragraphs (the first --nsamples paragraphs, each at most --seqlen tokens) | windows (SparseGPT's: --nsamples windows of exactly --seqlen tokens at seeded random starts of the tokenized text)", "paragraphs")
  .option("--calib-seed <s>", "windows: seed of the window starts", int("--calib-seed"), 0)
  .option("--seqlen <n>", "tokens per calibration paragraph at most", int("--seqlen"), 512)
  .option("--schedule <s>", "sequential (layers fed by pruned layers) | parallel (fed by dense activations)", "sequential")
  .option("--calib-shards <n>", "statistics summed over this many consecutive shards of the calibration samples, in order (the float32 sums depend on it; with --queue --schedule sequential: one job per shard)", int("--calib-shards"), 1)
  .option("--error-correction", "intra-layer error correction (default: on for fista)")
  .option("--no-error-correction", "fit each operator to its own input")
  .option("--fista-lasso", "fista: also solve the lasso path (λ bisected per row) as a candidate; ~2.7x the work")
  .option("--fista-budget <n>", "fista: W·H products per operator (refits and IHT; pruning.json reports what each operator used)", int("--fista-budget"))
  .option("--eval <file>", "report perplexity before and after on this text"), "eval-")
  .option("--dtype <t>", "stored dtype of the output: F32 | F16 | BF16 (default: as the input)")
  .option("--max-shard-size <size>", "largest output shard, e.g. 5GB, 2GiB (default 5GB, as save_pretrained)")
  .option("--max-memory <size>", "host memory budget, e.g. 16GiB (default: 3/4 of the free RAM); the calibration stream spills to disk beyond it")
  .option("--measure-error", "collect the Gram for every method (wanda and magnitude need less) to report each operator's relative error")
  .option("--quantize <scheme>", "also quantize every linear operator: w8 (int8 per channel) | w4g128 | w4g64 | w4g32 (int4 in groups); written as compressed-tensors pack-quantized (int-quantized with --activations int8, as upstream stores W4A8 / W8A8)")
  .option("--quantize-method <m>", "rtn (round to nearest) | gptq (error feedback through H⁻¹; with sparsegpt in its own sweep) (default gptq)")
  .option("--asym", "--quantize: asymmetric grids (an integer zero point per group)")
  .option("--act-order", "--quantize gptq: columns by decreasing H_jj, static groups (instead of SparseGPT's joint sweep with --method sparsegpt)")
  .option("--activations <a>", "--quantize: int8 declares dynamic int8 input activations in the config (compressed-tensors' W4A8 / W8A8; eval and generate then run the operators on int8 activations)")
  .addOption(residencyOption())
  .option("--force", "overwrite a finished output / restart a partial one")
  .option("--structured", "remove whole MLP channels and attention k/v groups: a smaller dense model (src/structured)")
  .option("--ratio <r>", "--structured: fraction of MLP channels and of k/v groups to remove, in [0,1)", num("--ratio"))
  .option("--heads-ratio <r>", "--structured: fraction of k/v groups (with their query heads) to remove (default --ratio)", num("--heads-ratio"))
  .option("--channels-ratio <r>", "--structured: fraction of MLP channels to remove (default --ratio)", num("--channels-ratio"))
  .option("--nonuniform", "--structured: allocate the removals over layers by score (config extension wasprune_layer_sizes)")
  .option("--no-refit", "--structured: skip the least-squares refit of o_proj/down_proj on the kept inputs")
  .option("--spsa-directions <k>", "--structured mini-llm / gate-hybrid: SPSA directions K (default 128)", int("--spsa-directions"))
  .option("--spsa-eps <e>", "--structured mini-llm / gate-hybrid: SPSA perturbation ε (default 1e-3 of the weights / 1e-2 of each structure's output scale)", num("--spsa-eps"))
  .option("--spsa-batch <n>", "--structured mini-llm / gate-hybrid: calibration paragraphs per SPSA batch (default 16)", int("--spsa-batch"))
  .option("--seed <s>", "--structured mini-llm / gate-hybrid: seed of the SPSA directions", int("--seed"))
  .addOption(tokenizerOption)
  .addOption(threadsOption())
  .addOption(deviceOption())
  .option("--json", "print the report as JSON")
  .option("--queue <url>", "distributed: coordinate the prune as jobs on this Redis (redis://[user:password@]host:port[/db]; a URL without a password takes $WASPRUNE_REDIS_PASSWORD; see `wasprune worker`)")
  .option("--work-dir <dir>", "distributed: the folder every worker sees (e.g. an NFS mount) for layers, activations and results")
  .action(async (model: string, opts, cmd: Command) => {
    (await import("../model/compressed.js")).refuseCompressed(model, "prune");
    const { routePrune } = await import("./commands/prune-structured.js");
    const route = routePrune(opts, (name) => cmd.getOptionValueSource(name));
    if (route === "structured") {
      const { pruneStructuredCommand } = await import("./commands/prune-structured.js");
      await pruneStructuredCommand(model, opts);
      return;
    }
    const { pruneCommand } = await import("./commands/prune.js");
    await pruneCommand(model, opts);
  });

protocolOptions(program
  .command("quantize")
  .description("quantize the linear weights of a dense or pruned model (GPTQ or round-to-nearest; zeros stay zero), written as compressed-tensors pack-quantized (int-quantized with --activations int8, as upstream stores W4A8 / W8A8)")
  .argument("<model>", "a .bin file, a Hugging Face model directory, or 'builtin'")
  .requiredOption("--out <dir>", "output model directory")
  .requiredOption("--scheme <s>", "w8 (int8 per channel) | w4g128 | w4g64 | w4g32 (int4 in groups of 128/64/32 inputs)")
  .option("--method <m>", "gptq | rtn", "gptq")
  .option("--asym", "asymmetric grids (an integer zero point per group)")
  .option("--act-order", "gptq: columns by decreasing H_jj, static groups (compressed-tensors actorder \"weight\")")
  .option("--activations <a>", "int8: declare dynamic int8 input activations in the config (compressed-tensors' W4A8 / W8A8; eval and generate then run the operators on int8 activations)")
  .option("--calib <file>", "calibration text for GPTQ (default: text sampled from the model)")
  .option("--nsamples <n>", "calibration paragraphs", int("--nsamples"), 128)
  .option("--seqlen <n>", "tokens per calibration paragraph at most", int("--seqlen"), 512)
  .option("--eval <file>", "report perplexity before and after on this text"), "eval-")
  .option("--force", "overwrite a finished output")
  .addOption(tokenizerOption)
  .addOption(threadsOption())
  .option("--json", "print the report as JSON")
  .action(async (model: string, opts) => {
    (await import("../model/compressed.js")).refuseCompressed(model, "quantize");
    const { pruneCommand } = await import("./commands/prune.js");
    // the prune driver with nothing pruned (magnitude at sparsity 0 keeps every weight, zeros included)
    await pruneCommand(model, { ...opts, method: "magnitude", sparsity: "0", schedule: "sequential", errorCorrection: false, quantize: opts.scheme, quantizeMethod: opts.method });
  });

program
  .command("worker")
  .description("take distributed-pruning jobs from the queue (of `prune --queue`) until SIGTERM/SIGINT")
  .requiredOption("--queue <url>", "redis://[user:password@]host:port[/db], the coordinator's (no password in the URL: $WASPRUNE_REDIS_PASSWORD)")
  .requiredOption("--work-dir <dir>", "the coordinator's --work-dir as this machine sees it")
  .option("--model <dir>", "this machine's own copy of the model being pruned: dense layers read from it instead of the work dir (each checked against the coordinator's digest; a copy that differs is not used)")
  .option("--lock-seconds <s>", "job lock: longer than the longest compute of a job on this worker's main thread (a dead worker's job returns to the queue after lock + lock/2)", num("--lock-seconds"), 300)
  .addOption(threadsOption())
  .action(async (opts) => {
    const { workerCommand } = await import("./commands/distributed.js");
    await workerCommand(opts);
  });

program
  .command("queue")
  .description("the distributed-pruning queue")
  .command("status")
  .description("jobs waiting/active/done/failed, workers and their throughput, the layers running, a rough ETA")
  .requiredOption("--queue <url>", "redis://[user:password@]host:port[/db] (no password in the URL: $WASPRUNE_REDIS_PASSWORD)")
  .option("--json", "print the status as JSON")
  .action(async (opts) => {
    const { queueStatusCommand } = await import("./commands/distributed.js");
    await queueStatusCommand(opts);
  });

program
  .command("compress")
  .description("store a pruned model compressed: 2:4 operators as sparse-24-bitmask, other ≥50%-sparse ones as sparse-bitmask")
  .argument("<model>", "a pruned .bin file or Hugging Face model directory")
  .requiredOption("--out <dir>", "output model directory")
  .option("--force", "replace an existing output")
  .addOption(tokenizerOption)
  .addOption(threadsOption())
  .option("--json", "print the report as JSON")
  .action(async (model: string, opts) => {
    const { compressCommand } = await import("./commands/compress.js");
    await compressCommand(model, opts);
  });

program
  .command("decompress")
  .description("write a compressed model back as a dense Hugging Face directory (bit-exact)")
  .argument("<model>", "a compressed model directory")
  .requiredOption("--out <dir>", "output model directory")
  .option("--force", "replace an existing output")
  .action(async (model: string, opts) => {
    const { decompressCommand } = await import("./commands/compress.js");
    await decompressCommand(model, opts);
  });

program
  .command("train")
  .description("recover a pruned model by distillation from the dense teacher: N:M (AST, or a fixed mask), or LoRA adapters on a structurally pruned model")
  .argument("<model>", "the dense model: the teacher (unless --teacher) and the starting point (unless --init)")
  .requiredOption("--data <file>", "training text, or 'teacher' for text sampled from the teacher (seeded, streamed)")
  .requiredOption("--steps <n>", "optimizer steps", int("--steps"))
  .requiredOption("--out <dir>", "output model directory")
  .option("--sparsity <s>", "N:M pattern (N kept of every M; default 2:4; not with --method lora)")
  .option("--teacher <model>", "dense teacher (default: MODEL)")
  .option("--init <dir>", "start the student from this (one-shot pruned) model instead of MODEL; with --method lora it may be smaller (prune --structured)")
  .option("--method <m>", "ast (masks recomputed, pruned weights decayed) | fixed (plain fine-tuning, first mask kept) | lora (adapters on a frozen dense student, merged at the end)", "ast")
  .option("--lr <lr>", "peak learning rate (warm-up, then cosine to lr/10)", num("--lr"), 1e-3)
  .option("--batch <b>", "sequences per micro-batch", int("--batch"), 8)
  .option("--seqlen <l>", "tokens per sequence", int("--seqlen"), 256)
  .option("--accum <a>", "micro-batches per step (gradient accumulation)", int("--accum"), 1)
  .option("--alpha <a>", "loss = α·CE + (1−α)·τ²·KL(teacher‖student)", num("--alpha"), 0.33)
  .option("--temperature <t>", "distillation temperature τ", num("--temperature"), 2)
  .option("--mask-interval <k>", "AST: recompute masks every k steps", int("--mask-interval"), 10)
  .option("--mask-metric <m>", "magnitude | wanda", "magnitude")
  .option("--decay <λ>", "AST: decay of pruned weights, ramped linearly from 0 (0.1 beat 0.01 on stories260K)", num("--decay"), 0.1)
  .option("--decay-ramp <steps>", "AST: steps over which the decay ramps up (default: --steps)", int("--decay-ramp"))
  .option("--weight-decay <wd>", "AdamW decoupled weight decay of 2-D weights", num("--weight-decay"), 0)
  .option("--warmup <steps>", "learning-rate warm-up steps (default: min(100, steps/10))", int("--warmup"))
  .option("--slorb", "add SLoRB low-rank blocks (initialised from the pruned weights)")
  .option("--slorb-k <k>", "SLoRB group size", int("--slorb-k"), 16)
  .option("--lora-rank <r>", "--method lora: adapter rank r", int("--lora-rank"), 8)
  .option("--lora-alpha <a>", "--method lora: adapter scale α (the update is (α/r)·B A)", num("--lora-alpha"), 16)
  .option("--eval <file>", "validation text: perplexity along training")
  .option("--eval-paragraphs <n>", "first N paragraphs of --eval", int("--eval-paragraphs"))
  .option("--eval-every <s>", "evaluate every S steps (default: steps/10)", int("--eval-every"))
  .option("--ctx <n>", "eval context per paragraph", int("--ctx"), 512)
  .option("--checkpoint-every <s>", "write a resumable checkpoint every S steps (default: --eval-every)", int("--checkpoint-every"))
  .option("--seed <s>", "seed of data order / teacher sampling", int("--seed"), 1337)
  .option("--grad-blocks <g>", "sum each step's sequences in G fixed blocks (the data-parallel grain; the same for any --threads)", int("--grad-blocks"), 4)
  .option("--force", "overwrite a finished output / restart a partial one")
  .addOption(tokenizerOption)
  .addOption(threadsOption())
  .option("--json", "print the summary and log as JSON")
  .action(async (model: string, opts) => {
    const { trainCommand } = await import("./commands/train.js");
    await trainCommand(model, opts);
  });

program
  .command("synth")
  .description("write a random-weight model of a real shape, to measure time and memory at scale (its perplexity means nothing)")
  .argument("<shape>", "smol-135m | tinyllama-1.1b | llama-2-7b | llama-2-13b | llama-2-70b | llama-3-8b | qwen2.5-0.5b, or a config.json file")
  .requiredOption("--out <dir>", "output model directory")
  .option("--layers <n>", "keep the first N layers (the same values as the full-depth model's)", int("--layers"))
  .option("--vocab <v>", "vocabulary size (default: the shape's; a smaller one keeps the first rows)", int("--vocab"))
  .option("--dtype <t>", "stored dtype: F32 | F16 | BF16", "BF16")
  .option("--seed <s>", "random seed", int("--seed"), 0)
  .option("--max-shard-size <size>", "largest shard, as save_pretrained: e.g. 5GB (10^9), 2GiB (2^30), or bytes", "5GB")
  .addOption(tokenizerOption)
  .option("--force", "replace an existing output")
  .option("--json", "print what was written as JSON")
  .action(async (shape: string, opts) => {
    const { synthCommand } = await import("./commands/synth.js");
    synthCommand(shape, opts);
  });

program
  .command("serve")
  .description("serve the browser page: the models generating in the page (WASM SIMD, Web Workers; COOP/COEP for threads), side by side")
  .argument("<models...>", "one or two models: a .bin file or a Hugging Face model directory (dense or compressed), or hf:ORG/NAME")
  .option("--port <n>", "port (0: any free one)", int("--port"), 8080)
  .option("--host <addr>", "address to listen on (loopback unless told otherwise)", "127.0.0.1")
  .action(async (models: string[], opts) => {
    const { serveCommand } = await import("./commands/serve.js");
    await serveCommand(models, opts);
  });

const bench = program.command("bench").description("benchmarks, measured side by side in one run");
bench
  .command("kernels")
  .description("single-thread dense GEMM GFLOP/s and GEMV GB/s against the scalar baseline")
  .option("--json", "print results as JSON")
  .option("--quick", "fewer repetitions")
  .addOption(threadsOption())
  .option("--svg <file>", "write a chart of sparse speed-up vs sparsity and shape")
  .addOption(deviceOption())
  .action(async (opts) => {
    if (opts.device !== "wasm") {
      const { selectDevice } = await import("../gpu/device.js");
      const gpu = await selectDevice(opts.device);
      if (gpu) {
        const { benchGpuKernels, renderGpuBench } = await import("../../bench/gpu-kernels.js");
        try {
          const r = await benchGpuKernels(gpu, { json: !!opts.json, quick: !!opts.quick });
          console.log(opts.json ? JSON.stringify(r, null, 2) : renderGpuBench(r));
        } finally {
          gpu.destroy();
        }
        return;
      }
    }
    const { benchKernels } = await import("../../bench/kernels.js");
    const r = await benchKernels({ json: !!opts.json, quick: !!opts.quick, svg: opts.svg });
    if (opts.json) console.log(JSON.stringify(r, null, 2));
  });
bench
  .command("model")
  .description("tokens/s of generate and eval, dense vs compressed (compressed in a temp dir), on MODEL and on a synthetic 4096-wide 2:4 stack")
  .argument("[model]", "a pruned .bin file or Hugging Face model directory (omit for the synthetic model only)")
  .option("--layers <n>", "layers of the synthetic 4096-wide model (~1.2 GB per layer for both forms)", int("--layers"), 2)
  .option("--no-synthetic", "skip the synthetic 4096-wide model")
  .addOption(new Option("--weights-dtype <d>", "dtype of the linear weights of both models in memory (packed once at load)").choices(["f32", "bf16", "f16"]).default("f32"))
  .option("--quick", "fewer tokens")
  .option("--json", "print results as JSON")
  .action(async (model: string | undefined, opts) => {
    const { benchModel } = await import("../../bench/model.js");
    const r = await benchModel(model, { json: !!opts.json, quick: !!opts.quick, layers: opts.layers, synthetic: opts.synthetic, weightsDtype: opts.weightsDtype });
    if (opts.json) console.log(JSON.stringify(r, null, 2));
  });
protocolOptions(bench
  .command("methods")
  .description("perplexity of every method x pattern x schedule x error correction, from the same dense weights")
  .argument("<model>", "a .bin file, a Hugging Face model directory, or 'builtin'")
  .requiredOption("--calib <file>", "calibration text")
  .requiredOption("--eval <file>", "evaluation text"), "eval-")
  .option("--nsamples <n>", "calibration samples (paragraphs, or windows)", int("--nsamples"), 128)
  .option("--calib-protocol <p>", "paragraphs (the first --nsamples paragraphs, each at most --seqlen tokens) | windows (SparseGPT's: --nsamples windows of exactly --seqlen tokens at seeded random starts of the tokenized text)", "paragraphs")
  .option("--calib-seed <s>", "windows: seed of the window starts", int("--calib-seed"), 0)
  .option("--seqlen <n>", "tokens per calibration paragraph at most", int("--seqlen"), 512)
  .option("--methods <list>", "comma-separated methods", "magnitude,wanda,sparsegpt,fista")
  .option("--fista-budgets <list>", "fista: one row per W·H products per operator, e.g. 15,30,60,150,555 (quality vs cost)")
  .option("--patterns <list>", "comma-separated patterns", "0.5,2:4")
  .option("--schedules <list>", "comma-separated schedules", "sequential,parallel")
  .option("--correction <c>", "error correction: default (fista only) | on | off | both", "both")
  .addOption(tokenizerOption)
  .addOption(threadsOption())
  .option("--json", "print results as JSON")
  .action(async (model: string, opts) => {
    const { benchMethods } = await import("../../bench/methods.js");
    const r = await benchMethods(model, opts);
    if (opts.json) console.log(JSON.stringify(r, null, 2));
  });
protocolOptions(bench
  .command("quant")
  .description("quantization table: method x {f32, w8, w4 RTN, w4 GPTQ} x {dense, 0.5, 2:4} from the same dense weights, with the quality and size targets")
  .argument("<model>", "a .bin file, a Hugging Face model directory, or 'builtin'")
  .requiredOption("--calib <file>", "calibration text")
  .requiredOption("--eval <file>", "evaluation text"), "eval-")
  .option("--nsamples <n>", "calibration paragraphs", int("--nsamples"), 128)
  .option("--seqlen <n>", "tokens per calibration paragraph at most", int("--seqlen"), 512)
  .option("--methods <list>", "comma-separated methods", "magnitude,wanda,sparsegpt,fista")
  .option("--scheme4 <s>", "the int4 scheme of the w4 columns", "w4g64")
  .addOption(tokenizerOption)
  .addOption(threadsOption())
  .option("--json", "print results as JSON")
  .action(async (model: string, opts) => {
    const { benchQuant } = await import("../../bench/quant.js");
    const r = await benchQuant(model, opts);
    if (opts.json) console.log(JSON.stringify(r, null, 2));
  });
bench
  .command("spsa")
  .description("MINI-LLM's SPSA gradient estimate against exact finite differences, correlation vs K")
  .argument("[model]", "model", "../shared/models/stories260K-hf")
  .option("--calib <file>", "calibration text", "../shared/data/tinystories-train-head/tinystories_train_head.txt")
  .option("--max-k <k>", "largest number of SPSA directions", int("--max-k"), 1024)
  .option("--json", "print results as JSON")
  .action(async (model: string, opts) => {
    const { benchSpsa } = await import("../../bench/structured-spsa.js");
    const r = await benchSpsa(model, opts.calib, opts.maxK, !!opts.json);
    if (opts.json) console.log(JSON.stringify(r, null, 2));
  });
bench
  .command("structured")
  .description("every structured-pruning criterion side by side: no refit, refit, refit + LoRA recovery, at each ratio, uniform and non-uniform")
  .argument("[model]", "model", "../shared/models/stories260K-hf")
  .option("--calib <file>", "calibration text", "../shared/data/tinystories-train-head/tinystories_train_head.txt")
  .option("--eval <file>", "evaluation text", "../shared/data/tinystories-valid-head/tinystories_valid_head.txt")
  .option("--eval-paragraphs <n>", "first N paragraphs of --eval", int("--eval-paragraphs"), 300)
  .option("--nsamples <n>", "calibration paragraphs", int("--nsamples"), 64)
  .option("--seqlen <n>", "tokens per calibration paragraph at most", int("--seqlen"), 512)
  .option("--ratios <list>", "fractions of MLP channels and of k/v groups removed", "0.25,0.5")
  .option("--criteria <list>", "magnitude, activation, weight-activation, taylor, gate-hybrid-exact, mini-llm-exact, gate-hybrid, mini-llm", "magnitude,activation,weight-activation,taylor,gate-hybrid-exact,mini-llm-exact,gate-hybrid,mini-llm")
  .option("--ks <list>", "SPSA directions K at which the estimates are read (one run of the largest)", "16,64,256,1024")
  .option("--allocations <list>", "uniform, nonuniform", "uniform,nonuniform")
  .option("--spsa-batch <n>", "calibration paragraphs per SPSA batch", int("--spsa-batch"), 16)
  .option("--seed <s>", "seed of the SPSA directions", int("--seed"), 1234)
  .option("--lora-steps <n>", "LoRA recovery steps of the refit model (0 = none; only the largest K of SPSA criteria)", int("--lora-steps"), 100)
  .option("--lora-batch <b>", "LoRA sequences per step", int("--lora-batch"), 8)
  .option("--lora-seqlen <l>", "LoRA tokens per sequence", int("--lora-seqlen"), 128)
  .option("--lora-lr <lr>", "LoRA peak learning rate", num("--lora-lr"), 5e-3)
  .option("--lora-rank <r>", "LoRA rank (α = 2r)", int("--lora-rank"), 8)
  .option("--lora-distill-alpha <a>", "loss α·CE + (1−α)·τ²·KL(dense‖student)", num("--lora-distill-alpha"), 0.33)
  .option("--lora-data <file>", "LoRA training text", "../shared/data/tinystories-train-head/tinystories_train_head.txt")
  .addOption(threadsOption())
  .option("--json", "print results as JSON")
  .action(async (model: string, opts) => {
    const { benchStructured } = await import("../../bench/structured-criteria.js");
    const r = await benchStructured(model, opts);
    if (opts.json) console.log(JSON.stringify(r, null, 2));
  });
bench
  .command("prune")
  .description("FISTA solve and λ search speed on 768x768 and 3072x768 operators")
  .option("--json", "print results as JSON")
  .option("--quick", "fewer repetitions")
  .addOption(threadsOption())
  .action(async (opts) => {
    const { benchPrune } = await import("../../bench/prune.js");
    const r = await benchPrune({ json: !!opts.json, quick: !!opts.quick });
    if (opts.json) console.log(JSON.stringify(r, null, 2));
  });

bench
  .command("scale")
  .description("pruning and layer-major eval on generated TinyLlama-1.1B and Llama-2-7B shapes (streamed; time and peak RSS per process), FISTA vs SparseGPT per layer, the papers' 128 × 2048 calibration costed, a 70B shape's memory floor")
  .option("--full", "generate the whole depth (22 and 32 layers: 2.2 + 13.5 GB on disk, hours on 2 cores) instead of 2 layers and an extrapolation")
  .option("--dir <dir>", "keep the generated models here (default: a temporary folder, removed at the end)")
  .option("--calib <file>", "calibration and evaluation text (default ../shared/data/tinystories-train-head)")
  .addOption(tokenizerOption)
  .option("--json", "print results as JSON")
  .option("--quick", "fewer calibration tokens")
  .addOption(threadsOption())
  .action(async (opts) => {
    const { benchScale } = await import("../../bench/scale.js");
    const { renderTarget } = await import("../../bench/targets.js");
    const r = await benchScale({ json: !!opts.json, quick: !!opts.quick, full: !!opts.full, dir: opts.dir, threads: opts.threads, calib: opts.calib, tokenizer: opts.tokenizer });
    if (opts.json) console.log(JSON.stringify(r, null, 2));
    else for (const t of r.targets) console.log(renderTarget(t));
  });

bench
  .command("page [model]")
  .description("tok/s of greedy generation in the browser page (Chromium from .cache/chromium, playwright-core) vs the Node library, same models (stories260K dense and a CSR copy, or MODEL), one thread, interleaved rounds; the page's relaxed-SIMD build beside its baseline build")
  .option("--rounds <n>", "rounds (each: Node then the page, per model)", int("--rounds"), 6)
  .option("--steps <n>", "tokens per generation", int("--steps"), 200)
  .option("--screenshot <file>", "save the page with the dense and the compressed model side by side (PNG)")
  .option("--device <d>", "the page's device: auto (row-major f32 weights without WebGPU) | wasm (packed for the kernels, Node's weights too)", "auto")
  .option("--kernels <b>", "the page's kernel build: auto (relaxed SIMD where Chromium has it) | baseline | relaxed", "auto")
  .option("--json", "print results as JSON")
  .action(async (model: string | undefined, opts) => {
    const { benchPage, renderPage } = await import("../../bench/page.js");
    const { isKernelBuild } = await import("../wasm/memory.js");
    if (opts.device !== "auto" && opts.device !== "wasm") throw new UsageError(`--device ${opts.device}: expected auto or wasm`);
    if (opts.kernels !== "auto" && !isKernelBuild(opts.kernels)) throw new UsageError(`--kernels ${opts.kernels}: expected auto, baseline or relaxed`);
    const r = await benchPage({ model, rounds: opts.rounds, steps: opts.steps, screenshot: opts.screenshot, device: opts.device, kernels: opts.kernels, log: (s) => console.error(s) });
    console.log(opts.json ? JSON.stringify(r, null, 2) : renderPage(r));
  });

bench
  .command("parallel")
  .description("1 thread vs --threads workers: FISTA λ search 3072x768, whole-model prune of an 8-layer LLaMA, eval")
  .option("--json", "print results as JSON")
  .option("--quick", "shorter runs")
  .option("--threads <n>", "worker threads to compare with 1", int("--threads"), 2)
  .action(async (opts) => {
    const { benchParallel } = await import("../../bench/parallel.js");
    const r = await benchParallel({ json: !!opts.json, quick: !!opts.quick, threads: opts.threads });
    if (opts.json) console.log(JSON.stringify(r, null, 2));
  });

bench
  .command("distributed")
  .description("overhead of the queue: a prune locally and as coordinator + 1, 2, 3 worker processes on this machine (outputs checked identical)")
  .option("--json", "print results as JSON")
  .option("--quick", "stories260K instead of a generated 2048-wide model")
  .option("--queue <url>", "a Redis to use (default: a redis-server of its own from .cache/redis on a free loopback port)")
  .action(async (opts) => {
    const { benchDistributed } = await import("../../bench/distributed.js");
    const r = await benchDistributed({ json: !!opts.json, quick: !!opts.quick, queue: opts.queue });
    if (opts.json) console.log(JSON.stringify(r, null, 2));
  });

bench
  .command("train")
  .description("tokens/s of a training step (AST, distillation) on a model and on a synthetic 8-layer 512-wide LLaMA")
  .argument("[model]", "a model directory or .bin (default: ../shared/models/stories260K-hf when present)")
  .option("--json", "print results as JSON")
  .option("--quick", "fewer steps")
  .option("--curves <list>", "instead: a table of validation perplexity vs tokens of finished runs, comma-separated [label=]DIR")
  .option("--svg <file>", "with --curves: write the chart")
  .action(async (model: string | undefined, opts) => {
    const b = await import("../../bench/train.js");
    if (opts.curves) {
      const curves = String(opts.curves).split(",").map(b.readCurve);
      console.log(b.curveTable(curves));
      if (opts.svg) (await import("node:fs")).writeFileSync(opts.svg, b.curveSvg(curves, [{ label: "dense 4.20", perplexity: 4.2008 }, { label: "one-shot FISTA 2:4 17.31", perplexity: 17.31 }, { label: "SparseGPT 2:4 34.74", perplexity: 34.74 }]));
      return;
    }
    const r = await b.benchTrain({ model, json: !!opts.json, quick: !!opts.quick });
    if (opts.json) console.log(JSON.stringify(r, null, 2));
  });

try {
  await program.parseAsync(process.argv);
} catch (e) {
  const verbose = program.opts().verbose || process.argv.includes("--verbose");
  if (verbose && e instanceof Error) console.error(e.stack);
  else console.error(`error: ${e instanceof WaspruneError || !(e instanceof Error) ? String((e as Error)?.message ?? e) : e.message}`);
  process.exitCode = e instanceof WaspruneError ? 1 : 2;
}
