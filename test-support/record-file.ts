/** The lines test tools append to a record file, read back by the test. */
import { readFileSync } from 'node:fs';

/** The non-empty lines of `file` so far; none when no tool has written it yet. */
export function recordedLines(file: string): string[] {
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  return text.split('\n').filter((line) => line.length > 0);
}
