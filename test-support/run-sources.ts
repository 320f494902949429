/**
 * Node flags that run the workspace's TypeScript sources in a child process: tsx, and the export
 * condition under which `@toolq/*` imports resolve to each package's src/ instead of its dist/.
 */
export const SOURCE_CONDITION = 'toolq-source';
export const RUN_SOURCES: readonly string[] = [`--conditions=${SOURCE_CONDITION}`, '--import', 'tsx'];

/**
 * This process's environment for a child that runs the built output: without the source condition
 * in NODE_OPTIONS (vitest sets it for every child), which would make its dist/ import src/ again.
 */
export function builtEnv(): NodeJS.ProcessEnv {
  const nodeOptions = (process.env.NODE_OPTIONS ?? '')
    .split(/\s+/)
    .filter((flag) => flag && flag !== `--conditions=${SOURCE_CONDITION}`)
    .join(' ');
  return { ...process.env, NODE_OPTIONS: nodeOptions };
}
