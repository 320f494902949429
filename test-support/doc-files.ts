/**
 * The markdown files users read (README.md, deploy/README.md, docs/*.md, packages/<name>/README.md)
 * and their fenced code blocks, for the tests that hold the docs to the code (test/doc-blocks,
 * test/docs-claims).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { REPO_ROOT } from './built-packages.ts';

export interface CodeBlock {
  /** Repository-relative path of the markdown file. */
  file: string;
  /** 1-based line of the block's first code line. */
  line: number;
  lang: string;
  fragment: boolean;
  code: string;
}

/** The markdown files users read. */
export function docFiles(): string[] {
  const docs = join(REPO_ROOT, 'docs');
  const packageReadmes = readdirSync(join(REPO_ROOT, 'packages'))
    .map((p) => join(REPO_ROOT, 'packages', p, 'README.md'))
    .filter((path) => existsSync(path));
  return [
    join(REPO_ROOT, 'README.md'),
    join(REPO_ROOT, 'deploy', 'README.md'),
    ...readdirSync(docs)
      .filter((f) => f.endsWith('.md'))
      .map((f) => join(docs, f)),
    ...packageReadmes,
  ];
}

/** Fenced blocks (``` or ~~~, up to 3 spaces of indent) with their info string. */
export function codeBlocks(path: string, text = readFileSync(path, 'utf8')): CodeBlock[] {
  const lines = text.split('\n');
  const blocks: CodeBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^ {0,3}(`{3,}|~{3,})\s*(.*)$/.exec(lines[i] ?? '');
    if (!open?.[1]) continue;
    const fence = open[1];
    const [lang = '', ...flags] = (open[2] ?? '').trim().split(/\s+/);
    const body: string[] = [];
    let j = i + 1;
    for (; j < lines.length; j++) {
      const close = /^ {0,3}(`{3,}|~{3,})\s*$/.exec(lines[j] ?? '');
      if (close?.[1] && close[1][0] === fence[0] && close[1].length >= fence.length) break;
      body.push(lines[j] ?? '');
    }
    blocks.push({
      file: relative(REPO_ROOT, path),
      line: i + 2,
      lang: lang.toLowerCase(),
      fragment: flags.includes('fragment'),
      code: `${body.join('\n')}\n`,
    });
    i = j;
  }
  return blocks;
}
