/**
 * The public surface of each workspace package: the names each entry point of its package.json
 * `exports` (`.`, `./internal`, …) exports, and which files outside the package import each of
 * them. test/boundaries.test.ts fails on an exported name nothing outside its package uses (unless
 * it is on that test's list of the API users need); run this file to print the counts:
 *
 *   pnpm surface            # per package and entry: exported names, used outside the package, unused
 *   pnpm surface --names    # and the unused names
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import ts from 'typescript';

export const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));
const SKIP_DIRS = new Set(['node_modules', 'dist', '.tmp', '.git']);

/** Every TypeScript/ESM source file of the repository under `dir` (no build output, no deps). */
export function sourceFiles(dir: string = REPO_ROOT): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (SKIP_DIRS.has(entry.name)) continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...sourceFiles(path));
    else if (/\.(ts|mts|mjs)$/.test(entry.name) && !entry.name.endsWith('.d.ts')) out.push(path);
  }
  return out;
}

export interface Entry {
  /** `@toolq/shared`, `@toolq/shared/internal`, … */
  specifier: string;
  /** The package's directory name under packages/. */
  dir: string;
  /** The source file the `toolq-source` condition points at. */
  file: string;
  /** Every name the entry exports (values and types), sorted. */
  names: string[];
  /** The entry has an `export * from` (whose names `names` leaves out). */
  exportsStar: boolean;
}

interface Manifest {
  name: string;
  exports?: Record<string, { 'toolq-source'?: string } | string>;
}

/** The entry points of every package under packages/, with the names each exports. */
export function packageEntries(): Entry[] {
  const entries: Omit<Entry, 'names' | 'exportsStar'>[] = [];
  for (const dir of readdirSync(join(REPO_ROOT, 'packages'))) {
    const manifestPath = join(REPO_ROOT, 'packages', dir, 'package.json');
    if (!existsSync(manifestPath)) continue;
    const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as Manifest;
    for (const [subpath, target] of Object.entries(manifest.exports ?? {})) {
      const source = typeof target === 'object' ? target['toolq-source'] : undefined;
      if (!source) continue;
      entries.push({
        specifier: subpath === '.' ? manifest.name : `${manifest.name}${subpath.slice(1)}`,
        dir,
        file: resolve(REPO_ROOT, 'packages', dir, source),
      });
    }
  }
  return entries.map((entry) => ({ ...entry, ...exportedNames(entry.file) }));
}

/**
 * The names a module exports, read from its syntax: its `export { … } from` lists and its own
 * exported declarations. An `export * from` is not followed (its names are not listed here:
 * test/boundaries.test.ts rejects it in an entry point, so that every public name is chosen).
 */
export function exportedNames(file: string): { names: string[]; exportsStar: boolean } {
  const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
  const names = new Set<string>();
  let exportsStar = false;
  for (const statement of source.statements) {
    if (ts.isExportDeclaration(statement)) {
      if (statement.exportClause && ts.isNamedExports(statement.exportClause)) {
        for (const el of statement.exportClause.elements) names.add(el.name.text);
      } else if (statement.exportClause) names.add(statement.exportClause.name.text);
      else exportsStar = true;
    } else if (ts.isExportAssignment(statement)) {
      names.add('default');
    } else if (ts.canHaveModifiers(statement)) {
      const modifiers = ts.getModifiers(statement) ?? [];
      if (!modifiers.some((m) => m.kind === ts.SyntaxKind.ExportKeyword)) continue;
      if (modifiers.some((m) => m.kind === ts.SyntaxKind.DefaultKeyword)) names.add('default');
      else if (ts.isVariableStatement(statement)) {
        for (const decl of statement.declarationList.declarations) {
          if (ts.isIdentifier(decl.name)) names.add(decl.name.text);
        }
      } else {
        const name = (statement as ts.DeclarationStatement).name;
        if (name && ts.isIdentifier(name)) names.add(name.text);
      }
    }
  }
  return { names: [...names].sort(), exportsStar };
}

export interface Use {
  /** The importing file. */
  file: string;
  specifier: string;
  name: string;
}

/**
 * What `file` takes from each module it imports: named imports and re-exports, `import('…').Name`
 * types, and for a namespace or dynamic import, every name of the file after a dot (`mod.runAgent`).
 */
export function importedNames(file: string, text: string): Map<string, Set<string>> {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const bySpecifier = new Map<string, Set<string>>();
  const namespaces = new Set<string>();
  const add = (specifier: string, name?: string) => {
    const names = bySpecifier.get(specifier) ?? new Set<string>();
    bySpecifier.set(specifier, names);
    if (name === undefined) namespaces.add(specifier);
    else names.add(name);
  };
  const visit = (node: ts.Node): void => {
    if (
      (ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) &&
      node.moduleSpecifier &&
      ts.isStringLiteral(node.moduleSpecifier)
    ) {
      const specifier = node.moduleSpecifier.text;
      if (ts.isImportDeclaration(node) && node.importClause?.name) add(specifier, 'default');
      const bindings = ts.isImportDeclaration(node) ? node.importClause?.namedBindings : node.exportClause;
      if (bindings && (ts.isNamedImports(bindings) || ts.isNamedExports(bindings))) {
        for (const el of bindings.elements) add(specifier, (el.propertyName ?? el.name).text);
      } else if (bindings || ts.isExportDeclaration(node)) add(specifier);
    } else if (
      ts.isImportTypeNode(node) &&
      ts.isLiteralTypeNode(node.argument) &&
      ts.isStringLiteral(node.argument.literal)
    ) {
      const qualifier = node.qualifier;
      add(
        node.argument.literal.text,
        qualifier && (ts.isIdentifier(qualifier) ? qualifier : qualifier.right).text,
      );
    } else if (
      ts.isCallExpression(node) &&
      node.expression.kind === ts.SyntaxKind.ImportKeyword &&
      node.arguments[0] &&
      ts.isStringLiteral(node.arguments[0])
    ) {
      add(node.arguments[0].text);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  if (namespaces.size > 0) {
    const dotted = new Set<string>();
    const collect = (node: ts.Node): void => {
      if (ts.isPropertyAccessExpression(node)) dotted.add(node.name.text);
      else if (ts.isQualifiedName(node)) dotted.add(node.right.text);
      ts.forEachChild(node, collect);
    };
    collect(source);
    for (const specifier of namespaces) for (const name of dotted) add(specifier, name);
  }
  return bySpecifier;
}

/**
 * Every use of every entry's names, from every file of the repository: by package name, or (the
 * package's own tests) by a relative path to the entry's file.
 */
export function usesOf(entries: Entry[], files: string[] = sourceFiles()): Map<Entry, Use[]> {
  const uses = new Map<Entry, Use[]>(entries.map((e) => [e, []]));
  const bySpecifier = new Map(entries.map((e) => [e.specifier, e]));
  const byFile = new Map(entries.map((e) => [e.file, e]));
  for (const file of files) {
    const text = readFileSync(file, 'utf8');
    // Only these can name an entry: by package, or by a path into a package's src/.
    if (!text.includes('@toolq/') && !text.includes('src/')) continue;
    for (const [specifier, names] of importedNames(file, text)) {
      const entry = specifier.startsWith('.')
        ? byFile.get(resolve(dirname(file), specifier))
        : bySpecifier.get(specifier);
      if (!entry) continue;
      const exported = new Set(entry.names);
      for (const name of names) {
        if (exported.has(name)) uses.get(entry)?.push({ file, specifier, name });
      }
    }
  }
  return uses;
}

/** packages/<dir>/ of a path, or undefined outside packages/. */
export function packageDirOf(path: string): string | undefined {
  const rel = relative(join(REPO_ROOT, 'packages'), path);
  return rel.startsWith('..') ? undefined : rel.split(sep)[0];
}

export interface Surface {
  entry: Entry;
  /** name → the files outside the entry's package that use it. */
  usedOutside: Map<string, string[]>;
  /** Exported names no file outside the package uses. */
  unusedOutside: string[];
  /** Exported names no file but the entry itself uses (not even the package's own tests). */
  unused: string[];
}

export function surfaces(entries: Entry[] = packageEntries()): Surface[] {
  const uses = usesOf(entries);
  return entries.map((entry) => {
    const all = uses.get(entry) ?? [];
    const usedOutside = new Map<string, string[]>();
    for (const use of all) {
      if (packageDirOf(use.file) === entry.dir) continue;
      usedOutside.set(use.name, [...(usedOutside.get(use.name) ?? []), relative(REPO_ROOT, use.file)]);
    }
    const usedAnywhere = new Set(all.map((u) => u.name));
    return {
      entry,
      usedOutside,
      unusedOutside: entry.names.filter((n) => !usedOutside.has(n)),
      unused: entry.names.filter((n) => !usedAnywhere.has(n)),
    };
  });
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const showNames = process.argv.includes('--names');
  const rows = surfaces();
  const width = Math.max(...rows.map((r) => r.entry.specifier.length));
  console.log(`${'entry'.padEnd(width)}  exports  used outside  unused outside`);
  for (const { entry, usedOutside, unusedOutside } of rows) {
    console.log(
      `${entry.specifier.padEnd(width)}  ${String(entry.names.length).padStart(7)}  ${String(usedOutside.size).padStart(12)}  ${String(unusedOutside.length).padStart(14)}`,
    );
    if (entry.exportsStar) console.log('  and an `export * from`, not counted');
    if (showNames && unusedOutside.length > 0) console.log(`  unused outside: ${unusedOutside.join(' ')}`);
  }
}
