/**
 * @file A redis-server of one's own, for the tests and `bench distributed` (never for a real deployment): the
 * binary scripts/install-redis.sh unpacked into .cache/redis of the checkout (Debian's package), on a free
 * loopback port, with its own config file and data folder (append-only file on, so a restart keeps the queue),
 * password optional. Every wait is bounded (a count and a time limit).
 */
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { packageRoot } from "../util/package-root.js";
import { UsageError } from "../errors.js";

// in the checkout (scripts/install-redis.sh), whether this module runs from src/ or compiled in dist/src/
const DIR = path.join(packageRoot(import.meta.url), ".cache", "redis");
const BIN = path.join(DIR, "root/usr/bin/redis-server");

/** Why the Redis tests cannot run here, or undefined when they can. */
export function redisMissing(): string | undefined {
  if (process.platform !== "linux") return "redis-server is installed by scripts/install-redis.sh on Linux only";
  if (!fs.existsSync(path.join(DIR, "installed"))) return "redis-server not installed in .cache/redis (run sh scripts/install-redis.sh)";
  return undefined;
}

/** A free TCP port on 127.0.0.1 (bound and released; the server binds it right after). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** One PING over a raw socket (RESP), with AUTH first when there is a password; resolves true on +PONG. */
function ping(port: number, password: string | undefined, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ host: "127.0.0.1", port });
    let buf = "";
    const done = (ok: boolean) => {
      clearTimeout(timer);
      sock.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    sock.on("error", () => done(false));
    const resp = (...args: string[]) => `*${args.length}\r\n` + args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join("");
    sock.on("connect", () => sock.write((password ? resp("AUTH", password) : "") + resp("PING")));
    sock.on("data", (d) => {
      buf += d.toString();
      if (buf.includes("+PONG")) done(true);
      else if (buf.includes("-")) done(false);
    });
  });
}

export interface RedisServer {
  port: number;
  /** redis://[:password@]127.0.0.1:port */
  url: string;
  password?: string;
  dir: string;
  /** kill the server (SIGKILL when `hard`, else SIGTERM) and wait for it to exit (bounded) */
  stop(hard?: boolean): Promise<void>;
  /** start it again on the same port and data folder */
  start(): Promise<void>;
}

async function waitExit(p: ChildProcess, ms: number): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return;
  await new Promise<void>((resolve) => {
    const t = setTimeout(() => {
      p.kill("SIGKILL");
      resolve();
    }, ms);
    p.once("exit", () => {
      clearTimeout(t);
      resolve();
    });
  });
}

/** Start a redis-server (throws with its log if it does not answer PING within ~10 s). */
export async function startRedis(opts: { password?: string } = {}): Promise<RedisServer> {
  const missing = redisMissing();
  if (missing) throw new UsageError(missing);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wasprune-redis-"));
  const port = await freePort();
  const conf = path.join(dir, "redis.conf");
  fs.writeFileSync(conf, [
    `port ${port}`, "bind 127.0.0.1", "protected-mode yes", `dir ${dir}`, "daemonize no", `logfile ${path.join(dir, "redis.log")}`,
    "save \"\"", "appendonly yes", "appendfsync always", "maxmemory-policy noeviction", "databases 8",
    ...(opts.password ? [`requirepass ${JSON.stringify(opts.password)}`] : []),
  ].join("\n") + "\n");
  const libPath = fs.readFileSync(path.join(DIR, "lib-path"), "utf8").trim();
  let proc: ChildProcess | undefined;
  const start = async () => {
    const err = fs.openSync(path.join(dir, "stderr.log"), "a");
    proc = spawn(BIN, [conf], { stdio: ["ignore", "ignore", err], env: { ...process.env, LD_LIBRARY_PATH: libPath } });
    fs.closeSync(err);
    for (let i = 0; i < 100; i++) {
      if (proc.exitCode !== null) break;
      if (await ping(port, opts.password, 500)) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    const read = (f: string) => (fs.existsSync(path.join(dir, f)) ? fs.readFileSync(path.join(dir, f), "utf8") : "");
    const log = read("stderr.log") + read("redis.log");
    proc.kill("SIGKILL");
    throw new UsageError(`redis-server on port ${port} did not answer PING within 10 s:\n${log.slice(-2000)}`);
  };
  await start();
  const auth = opts.password ? `:${encodeURIComponent(opts.password)}@` : "";
  return {
    port, dir, password: opts.password, url: `redis://${auth}127.0.0.1:${port}`,
    start,
    async stop(hard = false) {
      if (!proc) return;
      proc.kill(hard ? "SIGKILL" : "SIGTERM");
      await waitExit(proc, 5000);
      proc = undefined;
    },
  };
}
