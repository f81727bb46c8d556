// Starts the real playbookd for a test: a temp dir with a config (tokens of every role, the test
// methods), a data dir, port 0 (the port it took is read from --ready-file), and stops or kills it.
// The binary: $PLAYBOOKD, else build/bin/playbookd of this checkout (the C++ build makes it).
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

export const TOKENS = { crm: "crm-test-token", marketing: "marketing-test-token", admin: "admin-test-token" };

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../..");
export const PLAYBOOKD = process.env.PLAYBOOKD ?? path.join(repo, "build/bin/playbookd");

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class Daemon {
  readonly dir = mkdtempSync(path.join(tmpdir(), "playbook-js-test-"));
  readonly dataDir = path.join(this.dir, "data");
  port = 0;
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();

  constructor(private readonly extraConfig = "") {}

  get url(): string { return `ws://127.0.0.1:${this.port}/v1`; }
  get httpUrl(): string { return `http://127.0.0.1:${this.port}`; }
  log(): string {
    try { return readFileSync(path.join(this.dir, "daemon.log"), "utf8"); } catch { return ""; }
  }

  /** Starts it (on the port of the previous run when there was one) and waits until it serves. */
  async start(timeoutMs = 20000): Promise<void> {
    if (!existsSync(PLAYBOOKD)) throw new Error(`${PLAYBOOKD} missing: build it (ninja -C build playbookd) or set PLAYBOOKD`);
    const config = path.join(this.dir, "playbook.toml");
    const tokens = Object.entries(TOKENS).map(([role, token]) =>
      `[[auth.tokens]]\nrole = "${role}"\ntoken = "${token}"\nname = "${role}"\n`).join("\n");
    writeFileSync(config, `[debug]\ntest_methods = true\n\n${tokens}\n${this.extraConfig}\n`);
    const ready = path.join(this.dir, "ready.json");
    rmSync(ready, { force: true });
    const log = openSync(path.join(this.dir, "daemon.log"), "a");
    const child = spawn(PLAYBOOKD, ["--config", config, "--data-dir", this.dataDir, "--port", String(this.port),
                                    "--bind", "127.0.0.1", "--ready-file", ready, "--log-level", "info"],
                        { stdio: ["ignore", log, log] });
    this.child = child;
    this.exited = new Promise((resolve) => child.once("exit", () => resolve()));
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`playbookd exited at start:\n${this.log()}`);
      try {
        const r = JSON.parse(readFileSync(ready, "utf8"));
        if (r.status === "ok" && r.port > 0) { this.port = r.port; return; }
      } catch { /* not written yet */ }
      if (Date.now() > deadline) { await this.kill(); throw new Error(`playbookd not ready:\n${this.log()}`); }
      await sleep(20);
    }
  }

  /** SIGTERM: the daemon drains and exits. */
  async stop(): Promise<void> {
    if (!this.running()) return;
    this.child!.kill("SIGTERM");
    await this.exited;
  }

  /** SIGKILL: a crash. */
  async kill(): Promise<void> {
    if (!this.running()) return;
    this.child!.kill("SIGKILL");
    await this.exited;
  }

  running(): boolean { return !!this.child && this.child.exitCode === null && this.child.signalCode === null; }

  async dispose(): Promise<void> {
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Three assets for every stage of the default funnel. */
export const ASSETS = [
  { id: "case-price", title: "价格异议：ROI 案例", type: "case_study", language: "zh",
    stages: ["consideration", "evaluation", "negotiation"], body: "太贵了 预算 价格 投资回报", tags: ["price"] },
  { id: "roi-calc", title: "ROI calculator", type: "roi_calculator", language: "en",
    stages: ["interest", "consideration", "evaluation"], body: "return on investment budget price", tags: ["price"] },
  { id: "vs-competitor", title: "竞品对比", type: "competitor_comparison", language: "zh",
    stages: ["evaluation", "negotiation"], body: "竞争对手 对比 功能", tags: ["competitor"] },
];
