/**
 * Node flags that run the workspace's TypeScript sources in a child process: tsx, and the export
 * condition under which `@toolq/*` imports resolve to each package's src/ instead of its dist/.
 */
export const SOURCE_CONDITION = 'toolq-source';
export const RUN_SOURCES: readonly string[] = [`--conditions=${SOURCE_CONDITION}`, '--import', 'tsx'];
