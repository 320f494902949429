/**
 * Tools for the approval tests, served by worker processes: each run appends a line to the file
 * named by TOOLQ_TEST_EXECUTIONS, so a test can tell a call that never started from one that ran
 * (and count how often). `test_pay` needs approval above 100, `test_wipe` always, `test_lookup` never.
 */
import { appendFileSync } from 'node:fs';
import { defineTool } from '@toolq/shared';
import { z } from 'zod';

function record(line: string): void {
  const file = process.env.TOOLQ_TEST_EXECUTIONS;
  if (file) appendFileSync(file, `${line}\n`);
}

export const pay = defineTool({
  name: 'test_pay',
  description: 'Pays `amount` to `to`; a person approves payments above 100.',
  input: z.object({ amount: z.number(), to: z.string() }),
  approval: { when: [{ field: 'amount', above: 100 }] },
  run: ({ amount, to }) => {
    record(`pay ${to} ${amount}`);
    return `paid ${amount} to ${to}`;
  },
});

export const wipe = defineTool({
  name: 'test_wipe',
  description: 'Deletes `path`; a person approves every call.',
  input: z.object({ path: z.string() }),
  approval: 'always',
  run: ({ path }) => {
    record(`wipe ${path}`);
    return `wiped ${path}`;
  },
});

export const lookup = defineTool({
  name: 'test_lookup',
  description: 'Looks `key` up.',
  input: z.object({ key: z.string() }),
  run: ({ key }) => {
    record(`lookup ${key}`);
    return `value of ${key}`;
  },
});

const approvalTools = [pay, wipe, lookup];
export default approvalTools;
