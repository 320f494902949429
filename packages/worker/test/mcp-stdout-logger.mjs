#!/usr/bin/env node
/**
 * The fixture server behind a wrapper that writes a JSON log line to stdout before every line the
 * server writes, as servers that log to stdout do: `{"level":"info",...}` is JSON, not JSON-RPC.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const fixture = fileURLToPath(new URL('./mcp-fixture-server.mjs', import.meta.url));
const child = spawn(process.execPath, [fixture], { stdio: ['pipe', 'pipe', 'inherit'] });
process.stdin.pipe(child.stdin);
let n = 0;
createInterface({ input: child.stdout, crlfDelay: Number.POSITIVE_INFINITY }).on('line', (line) => {
  n++;
  // One write: the log line and the answer arrive in the same chunk.
  process.stdout.write(`${JSON.stringify({ level: 'info', msg: 'answering', n })}\n${line}\n`);
});
child.on('exit', (code) => process.exit(code ?? 1));
