// Drive `nucleus mcp` with the official MCP TypeScript SDK's stdio client:
// list tools, read, write, run, see a denial and a trifecta gate, and time
// tools/call read.  Usage: node client.mjs NUCLEUS_BIN WORKSPACE PROFILE
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";

const [bin, workspace, profile] = process.argv.slice(2);
let passed = 0, failed = 0;
function check(name, cond, detail) {
  if (cond) { passed++; console.log(`ok - ${name}`); }
  else { failed++; console.log(`not ok - ${name}${detail ? ": " + detail : ""}`); }
}
const text = (r) => (r.content || []).map((c) => c.text).join("");

const transport = new StdioClientTransport({
  command: bin,
  args: ["mcp", "--profile", profile, "--workspace", workspace],
  env: { ...process.env },
  stderr: "inherit",
});
const client = new Client({ name: "nucleus-test", version: "1.0.0" });
await client.connect(transport);

const info = client.getServerVersion();
check("initialize names the server", info && info.name === "nucleus", JSON.stringify(info));

const { tools } = await client.listTools();
const names = tools.map((t) => t.name).sort();
check("tools/list has read, write, run", ["read", "write", "run"].every((n) => names.includes(n)), names.join(","));
check("tools/list omits ungranted web_fetch", !names.includes("web_fetch"), names.join(","));
check("every tool has an input schema", tools.every((t) => t.inputSchema && t.inputSchema.type === "object"));

let r = await client.callTool({ name: "read", arguments: { path: "src/main.c" } });
check("read returns the file", !r.isError && text(r).includes("int main"), text(r));

r = await client.callTool({ name: "write", arguments: { path: "notes.txt", content: "from mcp\n" } });
check("write succeeds", !r.isError, text(r));

r = await client.callTool({ name: "run", arguments: { command: "cat notes.txt; echo done" } });
check("run returns output and exit status", !r.isError && text(r).includes("from mcp") && text(r).includes("[exit 0]"), text(r));

r = await client.callTool({ name: "read", arguments: { path: ".env" } });
check("reading .env is denied with a kind", r.isError && text(r).startsWith("path_denied"), text(r));

r = await client.callTool({ name: "read", arguments: { path: "issues/1.md" } });
check("untrusted issue is readable", !r.isError, text(r));

r = await client.callTool({ name: "run", arguments: { command: "git push origin main" } });
check("push after private + untrusted is gated", r.isError && text(r).includes("approval_required") && text(r).includes("trifecta"), text(r));
check("gate names an approval key", /approval key: git_push:[0-9a-f]{64}/.test(text(r)), text(r));

let refused = false;
try {
  const a = await client.callTool({ name: "approve", arguments: { key: "x" } });
  refused = a.isError === true;
} catch (e) {
  refused = /unknown tool/.test(String(e.message));
}
check("no tool lets the agent approve itself", refused && !names.includes("approve"));

// Latency of tools/call read (small file), median of 200.
const times = [];
for (let i = 0; i < 200; i++) {
  const t0 = process.hrtime.bigint();
  await client.callTool({ name: "read", arguments: { path: "src/main.c" } });
  times.push(Number(process.hrtime.bigint() - t0) / 1e6);
}
times.sort((a, b) => a - b);
console.log(`# tools/call read median ${times[100].toFixed(3)} ms (200 calls)`);

await client.close();
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
