// Smoke test: the official MCP TypeScript SDK (@modelcontextprotocol/sdk) spawns the real
// `ctmr-skill serve` over stdio, lists its tools and inspects a NIfTI label map that this
// test writes with nibabel; every count is compared with numpy's. Not for clinical use.
//
// Run: tests/ts/run.sh (installs the pinned SDK with `npm ci`, then `node --test`).
// Env: CTMR_SKILL_BIN (default <repo>/target/release/ctmr-skill), CTMR_SKILL_PYTHON
// (default <repo>/.venv/bin/python).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport, getDefaultEnvironment } from '@modelcontextprotocol/sdk/client/stdio.js';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const FIX = 'run scripts/test.sh (it builds target/release/ctmr-skill and the Python runtime)';
const BINARY = process.env.CTMR_SKILL_BIN || path.join(REPO_ROOT, 'target', 'release', 'ctmr-skill');
const PYTHON = process.env.CTMR_SKILL_PYTHON || path.join(REPO_ROOT, '.venv', 'bin', 'python');
const TOOLS = ['cancel_run', 'get_run', 'inspect_label_map', 'list_labels', 'list_runs', 'render_overlay', 'run_batch', 'run_script', 'verify_evidence'];

// Writes a label map with nibabel and prints what numpy counts in it, as JSON.
const WRITE_MASK = `
import json, sys
import nibabel as nib, numpy as np
path = sys.argv[1]
mask = np.zeros((21, 17, 13), dtype=np.uint8)
mask[2:9, 3:11, 1:7] = 1     # liver
mask[11:19, 2:6, 5:12] = 3   # spleen
mask[0:4, 12:17, 0:3] = 5    # right kidney, on three faces
mask[14:20, 10:15, 9:13] = 14
affine = np.array([[-1.25, 0, 0, 30.0], [0, 1.5, 0, -20.0], [0, 0, 3.0, 5.0], [0, 0, 0, 1.0]])
img = nib.Nifti1Image(mask, affine)
img.set_sform(affine, code=1)
nib.save(img, path)
img = nib.load(path)
ids, counts = np.unique(np.asanyarray(img.dataobj), return_counts=True)
print(json.dumps({
    "counts": {str(int(i)): int(c) for i, c in zip(ids, counts) if i != 0},
    "voxel_volume_ml": float(np.prod(np.asarray(img.header.get_zooms()[:3], dtype=np.float64))) / 1000.0,
    "shape": list(img.shape),
}))
`;

let workDir;
let mask;
let expected;
let client;
let transport;
let serverStderr = '';

before(async () => {
  assert.ok(existsSync(BINARY), `ctmr-skill binary not found at ${BINARY}: set CTMR_SKILL_BIN or ${FIX}`);
  assert.ok(existsSync(PYTHON), `no Python runtime at ${PYTHON}: set CTMR_SKILL_PYTHON or ${FIX}`);
  workDir = mkdtempSync(path.join(tmpdir(), 'ctmr-ts-smoke-'));
  mask = path.join(workDir, 'mask.nii.gz');
  const made = spawnSync(PYTHON, ['-c', WRITE_MASK, mask], { encoding: 'utf8' });
  assert.equal(made.status, 0, `writing the mask with nibabel failed: ${made.stderr}`);
  expected = JSON.parse(made.stdout);

  transport = new StdioClientTransport({
    command: BINARY,
    args: ['serve'],
    cwd: REPO_ROOT,
    env: { ...getDefaultEnvironment(), CTMR_SKILL_PYTHON: PYTHON, ...(process.env.TMPDIR ? { TMPDIR: process.env.TMPDIR } : {}) },
    stderr: 'pipe',
  });
  transport.stderr.on('data', (chunk) => {
    serverStderr = (serverStderr + chunk.toString()).slice(-4000);
  });
  client = new Client({ name: 'ctmr-skill-ts-smoke', version: '0.1.0' });
  await client.connect(transport);
});

after(async () => {
  if (client) await client.close();
  if (workDir) rmSync(workDir, { recursive: true, force: true });
});

test('initialize names the server and tools/list shows the four tools', async () => {
  const info = client.getServerVersion();
  assert.ok(info && info.name, 'server did not identify itself in initialize');
  const { tools } = await client.listTools();
  assert.deepEqual(tools.map((t) => t.name).sort(), TOOLS, `stderr: ${serverStderr}`);
  for (const tool of tools) {
    assert.equal(tool.inputSchema.type, 'object', tool.name);
    assert.equal(tool.inputSchema.additionalProperties, false, `${tool.name}: additionalProperties must be false`);
    assert.ok(tool.outputSchema && tool.outputSchema.type === 'object', `${tool.name} has no object outputSchema`);
    assert.match(tool.description ?? '', /clinical/i, `${tool.name} description does not mention clinical use`);
  }
});

test('inspect_label_map counts match numpy', async () => {
  // callTool validates structuredContent against the listed outputSchema (Ajv) itself.
  const result = await client.callTool({ name: 'inspect_label_map', arguments: { mask } });
  assert.ok(!result.isError, `inspect_label_map failed: ${JSON.stringify(result.content)} stderr: ${serverStderr}`);
  const report = result.structuredContent;
  assert.ok(report, 'no structuredContent');
  assert.deepEqual(report.mask.shape, expected.shape);
  const counts = Object.fromEntries(report.labels.map((row) => [String(row.id), row.voxels]));
  assert.deepEqual(counts, expected.counts);
  assert.ok(Math.abs(report.voxel_volume_ml - expected.voxel_volume_ml) < 1e-9, `${report.voxel_volume_ml}`);
  for (const row of report.labels) {
    const ml = expected.counts[String(row.id)] * expected.voxel_volume_ml;
    assert.ok(Math.abs(row.volume_ml - ml) <= 1e-9 * Math.max(1, ml), `label ${row.id}: ${row.volume_ml} mL vs ${ml}`);
  }
  const kidney = report.labels.find((row) => row.id === 5);
  assert.equal(kidney.touches_border, true, 'label 5 lies on three faces');
  assert.ok(result.content.some((c) => c.type === 'text' && c.text.length > 0), 'no text content');
});

test('a missing mask is a tool error naming the path, and the server keeps serving', async () => {
  const missing = path.join(workDir, 'absent.nii.gz');
  const result = await client.callTool({ name: 'inspect_label_map', arguments: { mask: missing } });
  assert.equal(result.isError, true, JSON.stringify(result));
  const text = result.content.map((c) => c.text ?? '').join('\n');
  assert.ok(text.includes(missing), `message does not name the path: ${text}`);
  const { tools } = await client.listTools();
  assert.equal(tools.length, TOOLS.length);
});
