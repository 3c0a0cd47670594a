// The official `openai` Node SDK (v4, tests/integration/js) against ward:
// completions, chat, streaming (both), logprobs, a 404 NotFoundError, and the
// 401 AuthenticationError for a missing/wrong key. Skips (77) when the SDK
// is not installed and `npm ci` cannot install it (no registry access).
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { randomBytes } from "node:crypto";

const here = dirname(fileURLToPath(import.meta.url));
const jsdir = join(here, "js");
const sdk = join(jsdir, "node_modules", "openai", "index.mjs");
if (!existsSync(sdk)) {
  const r = spawnSync("npm", ["ci", "--no-audit", "--no-fund"], { cwd: jsdir, stdio: "inherit", timeout: 180000 });
  if (r.status !== 0 || !existsSync(sdk)) {
    console.log("SKIP: the openai SDK is not installed and `npm ci` failed in tests/integration/js");
    process.exit(77);
  }
}
const { default: OpenAI } = await import(pathToFileURL(sdk).href);

const BIN = process.env.WARD_BIN;
const SRC = process.env.WARD_SRC;
let failed = 0, passed = 0;
function ok(cond, what) {
  if (cond) passed++;
  else { failed++; console.log("FAIL: " + what); }
}
function eq(got, want, what) { ok(got === want, `${what}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`); }

const tmp = mkdtempSync(join(tmpdir(), "ward-node-"));
const model = join(tmp, "m.gguf");
const mk = spawnSync("/usr/bin/python3", ["-c", `import api_model; api_model.make_model(${JSON.stringify(model)})`],
  { env: { ...process.env, PYTHONPATH: here }, stdio: "inherit" });
if (mk.status !== 0) { console.log("FAIL: cannot write the test model"); process.exit(1); }

const key = "sk-ward-" + randomBytes(12).toString("hex");
const ward = spawn(BIN, ["serve", "--host", "127.0.0.1", "--port", "0", "--model", model, "--served-model-name", "llama3"],
  { env: { ...process.env, WARD_API_KEY: key }, stdio: ["ignore", "ignore", "pipe"] });
let logs = "";
const port = await new Promise((resolve, reject) => {
  const t = setTimeout(() => reject(new Error("ward did not start: " + logs)), 20000);
  ward.stderr.on("data", (d) => {
    logs += d.toString();
    const m = logs.match(/"msg":"listening".*?"port":(\d+)/);
    if (m) { clearTimeout(t); resolve(Number(m[1])); }
  });
  ward.on("exit", (c) => reject(new Error("ward exited " + c + ": " + logs)));
});

const baseURL = `http://127.0.0.1:${port}/v1`;
const client = new OpenAI({ apiKey: key, baseURL, maxRetries: 0 });
try {
  // completions
  const c = await client.completions.create({ model: "llama3", prompt: "What is Kubernetes?", max_tokens: 6,
    temperature: 0, logprobs: 1 });
  ok(/^cmpl-[0-9a-f]{32}$/.test(c.id), "completion id");
  eq(c.object, "text_completion", "completion object");
  eq(c.model, "llama3", "completion model");
  eq(c.choices.length, 1, "one choice");
  eq(c.choices[0].finish_reason, "length", "finish_reason");
  eq(c.usage.completion_tokens, 6, "completion tokens");
  eq(c.choices[0].logprobs.tokens.length, 6, "logprobs tokens");
  const again = await client.completions.create({ model: "llama3", prompt: "What is Kubernetes?", max_tokens: 6,
    temperature: 0 });
  eq(again.choices[0].text, c.choices[0].text, "greedy determinism");

  // completions, streaming
  const cs = await client.completions.create({ model: "llama3", prompt: "What is Kubernetes?", max_tokens: 6,
    temperature: 0, stream: true, stream_options: { include_usage: true } });
  let text = "", usage = null, finish = null;
  for await (const chunk of cs) {
    if (chunk.choices.length) { text += chunk.choices[0].text; finish = chunk.choices[0].finish_reason || finish; }
    if (chunk.usage) usage = chunk.usage;
  }
  eq(text, c.choices[0].text, "streamed text = non-streamed");
  eq(finish, "length", "stream finish_reason");
  eq(usage && usage.completion_tokens, 6, "stream usage chunk");

  // chat
  const chat = await client.chat.completions.create({ model: "llama3", max_tokens: 5, seed: 42,
    messages: [{ role: "system", content: "You are a helpful assistant" }, { role: "user", content: "Hello" }] });
  ok(chat.id.startsWith("chatcmpl-"), "chat id");
  eq(chat.object, "chat.completion", "chat object");
  eq(chat.choices[0].message.role, "assistant", "chat role");
  eq(typeof chat.choices[0].message.content, "string", "chat content");
  eq(chat.usage.completion_tokens, 5, "chat usage");

  // chat, streaming
  const st = await client.chat.completions.create({ model: "llama3", max_tokens: 5, seed: 42, stream: true,
    messages: [{ role: "system", content: "You are a helpful assistant" }, { role: "user", content: "Hello" }] });
  let role = null, content = "", n = 0;
  for await (const chunk of st) {
    n++;
    const d = chunk.choices[0]?.delta || {};
    if (d.role) role = d.role;
    if (d.content) content += d.content;
  }
  eq(role, "assistant", "stream role chunk");
  eq(content, chat.choices[0].message.content, "streamed chat = non-streamed (same seed)");
  ok(n >= 2, "role chunk and content chunks"); // deltas of fast steps may be coalesced

  // models
  const models = await client.models.list();
  eq(models.data[0].id, "llama3", "models list");

  // 404 for an unknown model
  try {
    await client.completions.create({ model: "gpt-4", prompt: "x" });
    ok(false, "unknown model should fail");
  } catch (e) {
    ok(e instanceof OpenAI.NotFoundError, "NotFoundError: " + e);
    eq(e.status, 404, "404 status");
    eq(e.error?.message, "The model `gpt-4` does not exist.", "404 message");
  }
  // 400 for a bad field
  try {
    await client.completions.create({ model: "llama3", prompt: "x", top_p: 0 });
    ok(false, "top_p 0 should fail");
  } catch (e) {
    ok(e instanceof OpenAI.BadRequestError, "BadRequestError: " + e);
  }
  // 401: wrong key, then no key
  for (const bad of ["sk-wrong-" + randomBytes(8).toString("hex"), ""]) {
    const c2 = new OpenAI({ apiKey: bad || "unused", baseURL, maxRetries: 0,
      defaultHeaders: bad ? {} : { Authorization: null } });
    try {
      await c2.completions.create({ model: "llama3", prompt: "x", max_tokens: 1 });
      ok(false, "request without a valid key should fail");
    } catch (e) {
      ok(e instanceof OpenAI.AuthenticationError, "AuthenticationError: " + e);
      eq(e.status, 401, "401 status");
    }
  }
  ok(!logs.includes(key), "the API key never appears in the server log");
} catch (e) {
  failed++;
  console.log("FAIL: unexpected error: " + (e.stack || e));
} finally {
  ward.kill("SIGTERM");
  rmSync(tmp, { recursive: true, force: true });
}
console.log(`test_api_openai_node: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
