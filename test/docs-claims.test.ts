/**
 * What the docs say about installing and running toolq, held to the repository (issue 23, point
 * 17): every published package is named with its tarball install line, nothing tells a user to
 * install @toolq/* from the registry (nothing is published: the scope would fetch someone else's
 * package), no page promises an offline model in the coordinator or a key-less gateway, no page
 * shows the installed CLI a `.ts` module, and every relative link (and its #anchor) resolves.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildablePackages, REPO_ROOT } from '../test-support/built-packages.ts';
import { docFiles } from '../test-support/doc-files.ts';

const pages = docFiles().map((path) => ({
  path,
  file: relative(REPO_ROOT, path),
  text: readFileSync(path, 'utf8'),
}));
const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
/** The README with shell continuation lines joined: one command per line. */
const readmeCommands = readme.replace(/\\\n\s*/g, ' ');
const published = buildablePackages().filter((p) => !p.private);

/** Lines of every page that match, as `file:line: text`. */
function matching(pattern: RegExp, unless?: RegExp): string[] {
  return pages.flatMap(({ file, text }) =>
    text
      .split('\n')
      .flatMap((line, i) =>
        pattern.test(line) && !unless?.test(line) ? [`${file}:${i + 1}: ${line.trim()}`] : [],
      ),
  );
}

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to dashes. */
function anchors(markdown: string): Set<string> {
  const out = new Set<string>();
  let fenced = false;
  for (const line of markdown.split('\n')) {
    if (/^ {0,3}(```|~~~)/.test(line)) fenced = !fenced;
    const heading = fenced ? null : /^#{1,6}\s+(.*)$/.exec(line);
    if (!heading?.[1]) continue;
    const slug = heading[1]
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, '')
      .replace(/\s/g, '-');
    let unique = slug;
    for (let n = 1; out.has(unique); n++) unique = `${slug}-${n}`;
    out.add(unique);
  }
  return out;
}

describe('the docs hold to the repository', () => {
  it('the README names every published package and installs each from its tarball', () => {
    expect(published.length).toBe(5);
    for (const { name } of published) {
      expect(readme, name).toContain(`\`${name}\``);
      const tarball = `${name.slice(1).replace('/', '-')}-<version>.tgz`;
      expect(readmeCommands, `npm install …/${tarball}`).toMatch(
        new RegExp(`npm install [^\\n]*${tarball.replace(/[.<>]/g, '\\$&')}`),
      );
    }
  });

  it('never tells a user to install @toolq/* from the registry', () => {
    // The warnings against it name it: a line that says `never` or `would` is one.
    const warning = /\bnever\b|\bwould\b/;
    expect(matching(/npm (install|i|add)\b[^\n`]*\s@toolq\//, warning)).toEqual([]);
    expect(matching(/(pnpm|yarn) add\b[^\n`]*\s@toolq\//, warning)).toEqual([]);
  });

  it('promises no offline model in the coordinator and no runs on ANTHROPIC_BASE_URL alone', () => {
    expect(matching(/falls? back to (an? |the )?(offline|scripted)/i)).toEqual([]);
    expect(matching(/ANTHROPIC_BASE_URL[^.]*CONFIG_INVALID/)).toEqual([]);
    // Where the docs speak of a key-less coordinator, they say what it answers.
    expect(readme).toMatch(/503 NO_MODEL/);
  });

  it('shows the installed toolq-worker only JavaScript tool modules', () => {
    expect(matching(/(npx |\.bin\/)toolq-worker[^\n]*--tools\s+\S+\.(ts|mts|cts)\b/)).toEqual([]);
  });

  it('links only to files that exist, and to headings that exist', () => {
    const broken: string[] = [];
    for (const { path, file, text } of pages) {
      for (const [, target = ''] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
        if (/^[a-z]+:/i.test(target)) continue; // https:, mailto:
        const [filePart = '', anchor] = target.split('#');
        const linked = filePart === '' ? path : resolve(dirname(path), filePart);
        if (!existsSync(linked)) {
          broken.push(`${file}: ${target} (no such file)`);
          continue;
        }
        if (anchor && linked.endsWith('.md') && !anchors(readFileSync(linked, 'utf8')).has(anchor))
          broken.push(`${file}: ${target} (no such heading)`);
      }
    }
    expect(broken).toEqual([]);
  });

  it('docs/operations.md names every alert rule of deploy/', () => {
    const rules = readFileSync(join(REPO_ROOT, 'deploy/prometheus/alerts.yml'), 'utf8');
    const names = [...rules.matchAll(/^\s*- alert: (\S+)/gm)].map((m) => m[1] ?? '');
    expect(names.length).toBeGreaterThan(0);
    const operations = readFileSync(join(REPO_ROOT, 'docs/operations.md'), 'utf8');
    expect(names.filter((name) => !operations.includes(`\`${name}\``))).toEqual([]);
  });

  it('every route of docs/openapi.json is in a docs page', () => {
    const openapi = JSON.parse(readFileSync(join(REPO_ROOT, 'docs/openapi.json'), 'utf8')) as {
      paths: Record<string, Record<string, unknown>>;
    };
    const routes = Object.entries(openapi.paths).flatMap(([path, ops]) =>
      Object.keys(ops)
        .filter((method) => /^(get|post|put|patch|delete)$/.test(method))
        .map((method) => `${method.toUpperCase()} ${path}`),
    );
    expect(routes.length).toBeGreaterThan(0);
    const text = pages.map((p) => p.text).join('\n');
    expect(routes.filter((route) => !text.includes(route))).toEqual([]);
  });

  it('references no design.md (there is none)', () => {
    expect(existsSync(join(REPO_ROOT, 'design.md'))).toBe(false);
    expect(matching(/design\.md/)).toEqual([]);
  });
});
