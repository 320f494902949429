/**
 * `pnpm openapi`: rewrites docs/openapi.json from the route table (openapi.ts). Run it after
 * changing a route or a request/response schema; a test fails while the copy is out of date.
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { openApiText } from './openapi.ts';

export const OPENAPI_FILE = fileURLToPath(new URL('../../../../docs/openapi.json', import.meta.url));

writeFileSync(OPENAPI_FILE, openApiText());
process.stdout.write(`wrote ${OPENAPI_FILE}\n`);
