/**
 * Puts every name imported from `@toolq/shared` or `@toolq/shared/internal` under the entry that
 * exports it now, in every TypeScript file of the repository outside packages/shared/src (and, in
 * packages/shared/test, the same for `../src/index.ts` and `../src/internal.ts`). Re-runnable: run
 * it after moving a name between packages/shared/src/index.ts and internal.ts, or after merging a
 * branch that imports plumbing from the root entry; files already right are left alone.
 *
 *   pnpm internal-imports           # rewrites the imports, then `biome check --write`s those files
 *   pnpm internal-imports --check   # lists the files it would change; exit 1 if any
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import ts from 'typescript';
import { packageEntries, REPO_ROOT, sourceFiles } from './package-surface.ts';

const ROOT = '@toolq/shared';
const INTERNAL = '@toolq/shared/internal';
type Entry = typeof ROOT | typeof INTERNAL;
const SHARED_SRC = join(REPO_ROOT, 'packages', 'shared', 'src') + sep;

interface Binding {
  /** `name` or `name as alias`. */
  text: string;
  name: string;
  isType: boolean;
  /** The entry that exports it; a name neither exports stays where it was (tsc reports it). */
  home: Entry;
  /** The entry the file imports it from now. */
  from: Entry;
}

const entries = packageEntries();
const namesOf = (specifier: string) => {
  const entry = entries.find((e) => e.specifier === specifier);
  if (!entry) throw new Error(`${specifier} is not an entry of packages/shared/package.json`);
  return { file: entry.file, names: new Set(entry.names) };
};
const root = namesOf(ROOT);
const internal = namesOf(INTERNAL);

/** Which entry (`ROOT` or `INTERNAL`) an import specifier in `file` means, if either. */
function entryOf(file: string, specifier: string): Entry | undefined {
  if (specifier === ROOT || specifier === INTERNAL) return specifier;
  if (!specifier.startsWith('.')) return undefined;
  const target = resolve(dirname(file), specifier);
  return target === root.file ? ROOT : target === internal.file ? INTERNAL : undefined;
}

/** How `file` spells an entry: the package name, or (shared's own tests) a relative path. */
function spell(file: string, entry: Entry, usedRelative: boolean): string {
  if (!usedRelative) return entry;
  const rel = relative(dirname(file), entry === ROOT ? root.file : internal.file)
    .split(sep)
    .join('/');
  return rel.startsWith('.') ? rel : `./${rel}`;
}

function importLine(specifier: string, bindings: Binding[]): string {
  const sorted = [...bindings].sort((a, b) => a.name.localeCompare(b.name));
  if (sorted.every((b) => b.isType))
    return `import type { ${sorted.map((b) => b.text).join(', ')} } from '${specifier}';`;
  return `import { ${sorted.map((b) => (b.isType ? `type ${b.text}` : b.text)).join(', ')} } from '${specifier}';`;
}

/** The file's text with its shared imports regrouped, or undefined when they are already right. */
export function rewrite(file: string, text: string, warn: (message: string) => void): string | undefined {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const statements: ts.ImportDeclaration[] = [];
  const bindings: Binding[] = [];
  let usedRelative = false;
  for (const statement of source.statements) {
    if (!ts.isImportDeclaration(statement) || !ts.isStringLiteral(statement.moduleSpecifier)) continue;
    const entry = entryOf(file, statement.moduleSpecifier.text);
    if (!entry) continue;
    const clause = statement.importClause;
    const named = clause?.namedBindings;
    if (!clause || clause.name || !named || !ts.isNamedImports(named)) {
      warn(`${relative(REPO_ROOT, file)}: a default or namespace import of ${entry} is left as it is`);
      continue;
    }
    usedRelative ||= statement.moduleSpecifier.text.startsWith('.');
    statements.push(statement);
    for (const el of named.elements) {
      const name = (el.propertyName ?? el.name).text;
      const home = root.names.has(name) ? ROOT : internal.names.has(name) ? INTERNAL : undefined;
      if (!home) warn(`${relative(REPO_ROOT, file)}: ${name} is exported by neither ${ROOT} nor ${INTERNAL}`);
      bindings.push({
        text: el.propertyName ? `${el.propertyName.text} as ${el.name.text}` : el.name.text,
        name,
        isType: clause.isTypeOnly || el.isTypeOnly,
        home: home ?? entry,
        from: entry,
      });
    }
  }
  const homes = new Map<Entry, Binding[]>();
  for (const binding of bindings) homes.set(binding.home, [...(homes.get(binding.home) ?? []), binding]);
  const fromEntries = statements.map((s) => entryOf(file, (s.moduleSpecifier as ts.StringLiteral).text));
  const alreadyRight =
    new Set(fromEntries).size === statements.length && bindings.every((b) => b.home === b.from);
  if (alreadyRight) return undefined;
  const replacement = ([ROOT, INTERNAL] as const)
    .filter((entry) => homes.has(entry))
    .map((entry) => importLine(spell(file, entry, usedRelative), homes.get(entry) ?? []))
    .join('\n');
  // Replace the first statement, drop the others (with their line break), from the end backwards.
  let out = text;
  for (const statement of [...statements].reverse()) {
    const start = statement.getStart(source);
    const end = statement.getEnd();
    if (statement === statements[0]) out = out.slice(0, start) + replacement + out.slice(end);
    else out = out.slice(0, start) + out.slice(end).replace(/^\r?\n/, '');
  }
  return out === text ? undefined : out;
}

const checkOnly = process.argv.includes('--check');
const changed: string[] = [];
for (const file of sourceFiles()) {
  if (file.startsWith(SHARED_SRC)) continue;
  const text = readFileSync(file, 'utf8');
  if (!text.includes('@toolq/shared') && !text.includes('../src/in')) continue;
  const next = rewrite(file, text, (message) => console.warn(`warning: ${message}`));
  if (next === undefined) continue;
  changed.push(file);
  if (!checkOnly) writeFileSync(file, next);
}
for (const file of changed) console.log(relative(REPO_ROOT, file));
if (checkOnly) process.exitCode = changed.length > 0 ? 1 : 0;
else if (changed.length > 0) {
  // Sorts the regrouped imports and wraps long lines, as `pnpm format` would.
  execFileSync(join(REPO_ROOT, 'node_modules', '.bin', 'biome'), ['check', '--write', ...changed], {
    cwd: REPO_ROOT,
    stdio: 'inherit',
  });
}
